"""BG/NBD and Gamma-Gamma fitted by maximum likelihood on compressed statistics.

BG/NBD's likelihood depends on a customer only through ``(x, t_x, T)``
(:mod:`mr_jobs.clv_math` names them), so :func:`fit_bgnbd` takes the distinct triples and
how many customers share each (the reduce of :mod:`mr_jobs.clv_stats`): the fit costs
the same for 10,000 or 50 million customers with the same triples. Gamma-Gamma's depends
on each repeat customer's ``(x, m)`` with ``m`` a real number, which does not compress;
:func:`fit_gamma_gamma` takes distinct pairs with counts as well, from a bounded sample
when there are many (:mod:`models.clv_stage`).

Both maximise the log-likelihood over the logarithms of the parameters (scipy's L-BFGS-B
from lifetimes' start; from two more starts when that one does not converge), report the
log-likelihood, standard errors from the inverse of a numerical Hessian of the log-likelihood in the
parameters, and whether the optimiser converged. Log-likelihoods are lifetimes' (the
published -9582.43 of CDNOW is in weeks: time in days adds ``-ln(7) x sum(x)``).
"""

import math

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln

__all__ = [
    "ModelNotIdentifiedError",
    "bgnbd_log_likelihood",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_log_likelihood",
]

BGNBD_PARAMETERS = ("r", "alpha", "a", "b")
#: The search keeps each parameter within exp(+-20) (2e-9 to 5e8).
_LOG_BOUND = 20.0
GAMMA_GAMMA_PARAMETERS = ("p", "q", "v")


class ModelNotIdentifiedError(ValueError):
    """The data cannot identify the model (e.g. no repeat purchase at all)."""


def bgnbd_log_likelihood(params, x, t_x, T, counts):
    """BG/NBD log-likelihood of customers grouped by ``(x, t_x, T)``.

    Parameters
    ----------
    params : sequence of float
        ``(r, alpha, a, b)``, all > 0.
    x, t_x, T, counts : numpy.ndarray
        One entry per distinct triple; ``counts`` customers share it.

    Returns
    -------
    float
        ``sum(counts * ll(x, t_x, T))`` (lifetimes' formula, Fader et al. 2005 eq. 6).
    """
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(t_x + alpha)
    a4 = np.where(x > 0, a4, -np.inf)
    return float(np.sum(counts * (a1 + a2 + np.logaddexp(a3, a4))))


def gamma_gamma_log_likelihood(params, x, m, counts):
    """Gamma-Gamma log-likelihood of repeat customers grouped by ``(x, m)``.

    Parameters
    ----------
    params : sequence of float
        ``(p, q, v)``, all > 0.
    x, m, counts : numpy.ndarray
        ``x > 0`` and ``m > 0``.

    Returns
    -------
    float
        ``sum(counts * ll(x, m))`` (lifetimes' ``GammaGammaFitter`` formula).
    """
    p, q, v = params
    px = p * x
    ll = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(x * m + v)
    )
    return float(np.sum(counts * ll))


def _maximise(log_likelihood, start, n):
    """Maximise ``log_likelihood(params)`` over log-parameters from ``start`` and a few
    scaled starts; return ``(params, ll, result)`` of the best."""

    def objective(log_params):
        value = log_likelihood(np.exp(log_params)) / n
        return -value if math.isfinite(value) else 1e300

    best = None
    for scale in (0.0, -1.0, 1.0):
        x0 = np.log(start) + scale
        result = minimize(
            objective,
            x0,
            method="L-BFGS-B",
            bounds=[(-_LOG_BOUND, _LOG_BOUND)] * len(x0),
            options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9},
        )
        if best is None or result.fun < best.fun:
            best = result
        if best.success and scale == 0.0 and np.all(np.abs(best.x) < _LOG_BOUND):
            break  # converged inside the space from lifetimes' start: no other start needed
    params = np.exp(best.x)
    return params, log_likelihood(params), best


def _at_bounds(names, params):
    """The parameters the optimiser left at a bound of the search (log-parameters within
    +-:data:`_LOG_BOUND`): the likelihood still rose towards 0 or infinity there."""
    return [n for n, p in zip(names, params, strict=True) if abs(math.log(p)) >= _LOG_BOUND - 1e-6]


def _standard_errors(log_likelihood, params):
    """Standard errors from the inverse of the numerical Hessian of the log-likelihood in
    the parameters (central differences, steps 1e-4 relative); None where it is singular."""
    k = len(params)
    h = 1e-4 * params
    hessian = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            ei = np.zeros(k)
            ej = np.zeros(k)
            ei[i] = h[i]
            ej[j] = h[j]
            f = (
                log_likelihood(params + ei + ej)
                - log_likelihood(params + ei - ej)
                - log_likelihood(params - ei + ej)
                + log_likelihood(params - ei - ej)
            )
            hessian[i, j] = hessian[j, i] = f / (4 * h[i] * h[j])
    try:
        covariance = np.linalg.inv(-hessian)
    except np.linalg.LinAlgError:
        return [None] * k
    return [float(math.sqrt(v)) if v > 0 else None for v in np.diag(covariance)]


def _fit_result(names, params, ll, result, errors, data):
    at_bounds = _at_bounds(names, params)
    if at_bounds:
        shown = ", ".join(f"{n}={p:.4g}" for n, p in zip(names, params, strict=True))
        raise ModelNotIdentifiedError(
            f"the likelihood rises without end as {', '.join(at_bounds)} go to a limit "
            f"({shown}): these data do not identify the model"
        )
    return {
        "parameters": {n: float(p) for n, p in zip(names, params, strict=True)},
        "standard_errors": dict(zip(names, errors, strict=True)),
        "log_likelihood": float(ll),
        "converged": bool(result.success),
        "optimizer": {
            "method": "L-BFGS-B on log-parameters",
            "message": str(result.message),
            "iterations": int(result.nit),
        },
        "data": data,
    }


def _as_arrays(*columns):
    arrays = [np.asarray(c, dtype=float) for c in columns]
    if len({len(a) for a in arrays}) != 1:
        raise ValueError(f"columns of lengths {[len(a) for a in arrays]} should have one length")
    return arrays


def _grouped_bgnbd_log_likelihood(x, t_x, T, counts):
    """:func:`bgnbd_log_likelihood` of these triples as a function of the parameters,
    with each special function evaluated once per distinct ``x``, ``t_x`` or ``T`` (a log
    spans a few hundred distinct days and frequencies, and many more triples)."""
    xs, x_at = np.unique(x, return_inverse=True)
    ts, t_at = np.unique(t_x, return_inverse=True)
    Ts, T_at = np.unique(T, return_inverse=True)
    per_x = np.bincount(x_at, weights=counts, minlength=len(xs))
    repeat = x > 0
    x_floor = np.maximum(xs, 1) - 1

    def ll(params):
        r, alpha, a, b = params
        a12 = (
            gammaln(r + xs)
            - gammaln(r)
            + r * np.log(alpha)
            + gammaln(a + b)
            + gammaln(b + xs)
            - gammaln(b)
            - gammaln(a + b + xs)
        )
        a3 = -(r + x) * np.log(alpha + Ts)[T_at]
        a4 = (np.log(a) - np.log(b + x_floor))[x_at] - (r + x) * np.log(ts + alpha)[t_at]
        a4 = np.where(repeat, a4, -np.inf)
        return float(np.dot(per_x, a12) + np.dot(counts, np.logaddexp(a3, a4)))

    return ll


def fit_bgnbd(x, t_x, T, counts):
    """Fit BG/NBD by maximum likelihood on distinct ``(x, t_x, T)`` with counts.

    Parameters
    ----------
    x, t_x, T : array_like
        Repeat purchases, recency and age (in one time unit: days in this project).
    counts : array_like
        Customers per triple (> 0).

    Returns
    -------
    dict
        ``parameters`` (``r``, ``alpha``, ``a``, ``b``), ``standard_errors``,
        ``log_likelihood``, ``converged``, ``optimizer`` and ``data`` (customers, distinct
        triples, repeat buyers, repeat purchases).

    Raises
    ------
    ModelNotIdentifiedError
        With no customer, no repeat purchase, or ``t_x > T`` or a negative value.
    """
    x, t_x, T, counts = _as_arrays(x, t_x, T, counts)
    customers = float(counts.sum()) if len(counts) else 0.0
    if customers <= 0:
        raise ModelNotIdentifiedError("BG/NBD needs customers: there are none")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T) or np.any(counts <= 0):
        raise ModelNotIdentifiedError(
            "BG/NBD needs 0 <= t_x <= T, x >= 0 and counts > 0 for every triple"
        )
    repeats = float(np.sum(counts * x))
    buyers = float(np.sum(counts[x > 0]))
    if repeats == 0:
        raise ModelNotIdentifiedError(
            f"BG/NBD cannot be fitted: none of the {int(customers):,} customers bought "
            "again (every frequency is 0)"
        )
    data = {
        "customers": int(customers),
        "distinct_triples": len(x),
        "repeat_buyers": int(buyers),
        "repeat_purchases": int(repeats),
    }
    start = np.array([1.0, max(float(np.average(T, weights=counts)), 1.0), 1.0, 1.0])

    ll = _grouped_bgnbd_log_likelihood(x, t_x, T, counts)
    params, value, result = _maximise(ll, start, customers)
    return _fit_result(BGNBD_PARAMETERS, params, value, result, _standard_errors(ll, params), data)


def fit_gamma_gamma(x, m, counts):
    """Fit Gamma-Gamma by maximum likelihood on repeat customers' ``(x, m)`` with counts.

    Parameters
    ----------
    x, m, counts : array_like
        Repeat purchases (> 0), mean repeat value (> 0), customers per pair.

    Returns
    -------
    dict
        As :func:`fit_bgnbd`, with ``p``, ``q``, ``v`` and ``data`` (customers, distinct
        pairs).

    Raises
    ------
    ModelNotIdentifiedError
        With fewer than 2 distinct pairs, a value <= 0, or a fit whose ``q <= 1`` (the
        population mean value ``v p / (q - 1)`` would be infinite).
    """
    x, m, counts = _as_arrays(x, m, counts)
    if np.any(x <= 0) or np.any(m <= 0) or np.any(counts <= 0):
        raise ModelNotIdentifiedError("Gamma-Gamma needs x > 0, m > 0 and counts > 0")
    if len(x) < 2:
        raise ModelNotIdentifiedError(
            f"Gamma-Gamma needs repeat customers with at least 2 distinct (x, m): {len(x)} found"
        )
    customers = float(counts.sum())
    start = np.array([1.0, 2.0, max(float(np.average(m, weights=counts)), 1e-6)])

    def ll(params):
        return gamma_gamma_log_likelihood(params, x, m, counts)

    params, value, result = _maximise(ll, start, customers)
    if params[1] <= 1:
        raise ModelNotIdentifiedError(
            f"Gamma-Gamma fit gives q={params[1]:.4g} <= 1: the population's mean value is "
            "infinite, so no expected value can be given"
        )
    data = {"customers": int(customers), "distinct_pairs": len(x)}
    errors = _standard_errors(ll, params)
    return _fit_result(GAMMA_GAMMA_PARAMETERS, params, value, result, errors, data)
