"""The BG/NBD and Gamma-Gamma expectations of one customer: the one home of the formulas
the scoring tasks (:mod:`mr_jobs.clv_scores`) and the driver (:mod:`models.clv`) use.

The models (Fader, Hardie and Lee 2005, "Counting your customers the easy way"; Fader and
Hardie 2013, "The Gamma-Gamma model of monetary value") describe a customer by

- ``x``: repeat purchases (purchase days after the first, in the calibration period);
- ``t_x``: the day of the last purchase, counted from the first (0 without repeats);
- ``T``: the days from the first purchase to the end of the calibration period;
- ``m``: the mean value of the repeat purchase days (0 without repeats).

Time is in days here (the lifetimes columns of an RFM row of period ``D``). Every function
takes plain floats (a scalar ``scipy.special.hyp2f1``, ``math`` otherwise), so a task
and the driver compute the same bits for the same customer; the results equal lifetimes'
``BetaGeoFitter`` and ``GammaGammaFitter`` formulas (which are written with numpy) to
rounding.

Examples
--------
>>> bgnbd = (0.2426, 4.4136 * 7, 0.7929, 2.4259)
>>> p_alive(bgnbd, 0, 0.0, 100.0)
1.0
>>> round(p_alive(bgnbd, 2, 30.0, 200.0), 4)
0.1786
"""

import math

from scipy.special import hyp2f1

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


def p_alive(bgnbd, x, t_x, T):
    """P(alive at T | x, t_x, T) under BG/NBD: 1 for a customer without repeat purchases.

    Parameters
    ----------
    bgnbd : tuple of float
        ``(r, alpha, a, b)``; ``alpha`` in days.
    x : int
        Repeat purchases.
    t_x, T : float
        Days from the first purchase to the last one, and to the end of the calibration.

    Returns
    -------
    float
    """
    if x == 0:
        return 1.0
    r, alpha, a, b = bgnbd
    log_div = (r + x) * math.log((alpha + T) / (alpha + t_x)) + math.log(a / (b + x - 1))
    # expit(-log_div), without overflow either way
    if log_div >= 0:
        e = math.exp(-log_div)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(log_div))


def expected_purchases(bgnbd, t, x, t_x, T):
    """E[purchases in (T, T + t] | x, t_x, T] under BG/NBD (Fader et al. 2005, eq. 10).

    Parameters
    ----------
    bgnbd : tuple of float
        ``(r, alpha, a, b)``.
    t : float
        Days after the end of the calibration (>= 0).
    x, t_x, T
        As :func:`p_alive`.

    Returns
    -------
    float
    """
    if t == 0:
        return 0.0
    r, alpha, a, b = bgnbd
    c = a + b + x - 1
    z = t / (alpha + T + t)
    hyp = hyp2f1(r + x, b + x, c, z)
    if math.isinf(hyp) or hyp <= 0:
        # Euler's transformation: 2F1(a, b; c; z) = (1 - z)^(c - a - b) 2F1(c - a, c - b; c; z)
        ln_hyp = math.log(hyp2f1(c - r - x, c - b - x, c, z)) + (c - r - 2 * x - b) * math.log(
            1 - z
        )
    else:
        ln_hyp = math.log(hyp)
    first = (a + b + x - 1) / (a - 1)
    second = 1.0 - math.exp(ln_hyp + (r + x) * math.log((alpha + T) / (alpha + t + T)))
    denominator = 1.0
    if x > 0:
        denominator += (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    return first * second / denominator


def expected_value(gamma_gamma, x, m):
    """E[mean purchase value | x, m] under Gamma-Gamma: the customer's mean repeat value
    pulled towards the population mean, the more the fewer repeats (the population mean
    for ``x == 0``).

    Parameters
    ----------
    gamma_gamma : tuple of float
        ``(p, q, v)``, with ``q > 1``.
    x : int
    m : float

    Returns
    -------
    float
    """
    p, q, v = gamma_gamma
    population = v * p / (q - 1)
    if x == 0:
        return population
    weight = p * x / (p * x + q - 1)
    return (1 - weight) * population + weight * m


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
    (float, float)
        The undiscounted expected purchases in the horizon and the discounted factor.
    """
    factor = 0.0
    before = 0.0
    end = 0
    while end < horizon_days:
        end = min(end + DAYS_PER_MONTH, horizon_days)
        upto = expected_purchases(bgnbd, end, x, t_x, T)
        factor += (upto - before) / (1.0 + discount_rate) ** (end / DAYS_PER_MONTH)
        before = upto
    return before, factor
