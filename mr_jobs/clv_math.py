"""The BG/NBD and Gamma-Gamma expectations of one customer: the one home of the formulas
the scoring tasks (:mod:`mr_jobs.clv_scores`) and the driver (:mod:`models.clv`) use.

The models (Fader, Hardie and Lee 2005, "Counting your customers the easy way"; Fader and
Hardie 2013, "The Gamma-Gamma model of monetary value") describe a customer by

- ``x``: repeat purchases (purchase days after the first, in the calibration period);
- ``t_x``: the day of the last purchase, counted from the first (0 without repeats);
- ``T``: the days from the first purchase to the end of the calibration period;
- ``m``: the mean value of the repeat purchase days (0 without repeats).

Time is in days here (the lifetimes columns of an RFM row of period ``D``). Every function
is elementwise over numpy arrays (or scalars: a 0-d result), so a task scores a batch of
customers at once and gives each the bits it would get alone; the results equal lifetimes'
``BetaGeoFitter`` and ``GammaGammaFitter`` formulas to rounding, and stay finite where
lifetimes' logarithm of a negative hypergeometric series gives NaN (``a + b + x < 1``).

Examples
--------
>>> bgnbd = (0.2426, 4.4136 * 7, 0.7929, 2.4259)
>>> float(p_alive(bgnbd, 0, 0.0, 100.0))
1.0
>>> round(float(p_alive(bgnbd, 2, 30.0, 200.0)), 4)
0.1786
"""

import numpy as np
from scipy.special import expit, hyp2f1

__all__ = [
    "DAYS_PER_MONTH",
    "clv_factor",
    "expected_purchases",
    "expected_value",
    "p_alive",
]

#: A month of the discounting: 30 days, as lifetimes' ``customer_lifetime_value`` with
#: ``freq="D"`` counts it.
DAYS_PER_MONTH = 30


def _floats(*values):
    return np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in values))


def p_alive(bgnbd, x, t_x, T):
    """P(alive at T | x, t_x, T) under BG/NBD: 1 for a customer without repeat purchases.

    Parameters
    ----------
    bgnbd : tuple of float
        ``(r, alpha, a, b)``; ``alpha`` in days.
    x : array_like of int
        Repeat purchases.
    t_x, T : array_like of float
        Days from the first purchase to the last one, and to the end of the calibration.

    Returns
    -------
    numpy.ndarray
    """
    r, alpha, a, b = bgnbd
    x, t_x, T = _floats(x, t_x, T)
    log_div = (r + x) * np.log((alpha + T) / (alpha + t_x)) + np.log(a / (b + np.maximum(x, 1) - 1))
    return np.where(x == 0, 1.0, expit(-log_div))


def expected_purchases(bgnbd, t, x, t_x, T):
    """E[purchases in (T, T + t] | x, t_x, T] under BG/NBD (Fader et al. 2005, eq. 10).

    Parameters
    ----------
    bgnbd : tuple of float
        ``(r, alpha, a, b)``.
    t : array_like of float
        Days after the end of the calibration (>= 0).
    x, t_x, T
        As :func:`p_alive`.

    Returns
    -------
    numpy.ndarray
    """
    r, alpha, a, b = bgnbd
    t, x, t_x, T = _floats(t, x, t_x, T)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        c = a + b + x - 1
        z = t / (alpha + T + t)
        ratio_log = (r + x) * np.log((alpha + T) / (alpha + t + T))
        hyp = hyp2f1(r + x, b + x, c, z)
        # not through a logarithm: the series may be negative
        term = hyp * np.exp(ratio_log)
        bad = ~np.isfinite(hyp)
        if bad.any():
            term[bad] = _euler_term(r, b, c[bad], x[bad], z[bad], ratio_log[bad])
        first = (a + b + x - 1) / (a - 1)
        odds = (a / (b + np.maximum(x, 1) - 1)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
        value = first * (1.0 - term) / (1.0 + np.where(x > 0, odds, 0.0))
    return np.where(t == 0, 0.0, value)


def _euler_term(r, b, c, x, z, ratio_log):
    """2F1 x the ratio where 2F1 overflows, by Euler's transformation
    ``2F1(a, b; c; z) = (1 - z)^(c - a - b) 2F1(c - a, c - b; c; z)``, in logarithms."""
    alt = hyp2f1(c - r - x, c - b - x, c, z)
    log_term = np.log(np.abs(alt)) + (c - r - 2 * x - b) * np.log1p(-z) + ratio_log
    return np.where(alt == 0, 0.0, np.sign(alt) * np.exp(log_term))


def expected_value(gamma_gamma, x, m):
    """E[mean purchase value | x, m] under Gamma-Gamma: the customer's mean repeat value
    pulled towards the population mean, the more the fewer repeats (the population mean
    for ``x == 0``).

    Parameters
    ----------
    gamma_gamma : tuple of float
        ``(p, q, v)``, with ``q > 1``.
    x : array_like of int
    m : array_like of float

    Returns
    -------
    numpy.ndarray
    """
    p, q, v = gamma_gamma
    x, m = _floats(x, m)
    population = v * p / (q - 1)
    weight = p * x / (p * x + q - 1)
    return np.where(x == 0, population, (1 - weight) * population + weight * m)


def clv_factor(bgnbd, horizon_days, discount_rate, x, t_x, T):
    """The discounted expected purchases over the horizon: CLV = value x this factor.

    The horizon is cut into months of :data:`DAYS_PER_MONTH` days (the last one shorter
    when ``horizon_days`` is not a multiple); the expected purchases of month ``i``
    (ending on day ``t_i``) are discounted by ``(1 + discount_rate) ** (t_i / 30)``, as
    lifetimes' ``customer_lifetime_value(..., time=horizon_days / 30, freq="D")`` does
    for a whole number of months.

    Parameters
    ----------
    bgnbd : tuple of float
    horizon_days : int
        >= 1.
    discount_rate : float
        Monthly, >= 0.
    x, t_x, T
        As :func:`p_alive`.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The undiscounted expected purchases in the horizon and the discounted factor.
    """
    x, t_x, T = _floats(x, t_x, T)
    factor = np.zeros(x.shape)
    before = np.zeros(x.shape)
    end = 0
    while end < horizon_days:
        end = min(end + DAYS_PER_MONTH, horizon_days)
        upto = expected_purchases(bgnbd, end, x, t_x, T)
        factor = factor + (upto - before) / (1.0 + discount_rate) ** (end / DAYS_PER_MONTH)
        before = upto
    return before, factor
