"""Fast candidate forecasters in numpy: exponential smoothing (ETS) and Theta.

Each takes a history ``y`` (a float array without gaps) and returns a dict with
``forecast``, ``lower`` and ``upper`` (the ``1 - alpha`` prediction interval) for
``horizon`` steps, ``model`` (a readable name), ``parameters`` and ``sse`` (the in-sample
one-step squared errors). They are the cheap candidates of the rolling-origin model choice
of :mod:`models.forecast` beside ARIMA and the seasonal naive.

ETS, additive errors (Hyndman et al. 2008, class 1)
    ``ANN`` (simple exponential smoothing), ``AAdN`` (damped additive trend) and, for a
    season ``m`` with at least two seasons of history, ``ANA`` and ``AAdA`` (additive
    season). The smoothing parameters are chosen by least squares over a grid, all grid
    points filtered at once (one numpy pass over the history per model, the grid as a
    vector): ``alpha`` in 0.02..0.98, ``beta = beta* x alpha``, ``gamma = gamma* x (1 -
    alpha)``, ``phi`` in {0.8, 0.9, 0.95, 0.98}. Initial states: the first value (level),
    the mean slope of the first season or four periods (trend), the first two seasons'
    deviations from their mean (season). The intervals are the class-1 analytic ones:
    ``var_h = sigma^2 (1 + sum_{j<h} c_j^2)`` with ``c_j = alpha + beta phi_j + gamma
    [j mod m = 0]``, ``phi_j = phi + ... + phi^j``, Gaussian.
Theta (Assimakopoulos and Nikolopoulos 2000, as Hyndman and Billah 2003 show it: SES with
drift)
    The forecast is SES's plus ``b0 / 2 (h - 1 + 1 / alpha - (1 - alpha)^n / alpha)`` with
    ``b0`` the least-squares slope of ``y`` on time; when the series is seasonal at lag
    ``m`` (at least two seasons, the lag-``m`` autocorrelation beyond 1.645 of its standard
    error: the M3 competition's test), it is first divided by classical multiplicative
    seasonal indices (subtracted, when a value is not positive) and the forecast
    re-seasonalised. Intervals: those of SES on the adjusted series.

Examples
--------
>>> y = np.array([10.0, 12.0, 11.0, 13.0, 12.0, 14.0, 13.0, 15.0])
>>> fit = ets(y, 3, trend=True)
>>> fit["model"], len(fit["forecast"])
('ETS(A,Ad,N)', 3)
"""

import math
from statistics import NormalDist

import numpy as np

__all__ = ["ets", "is_seasonal", "theta"]

_ALPHAS = np.linspace(0.02, 0.98, 25)
_BETA_SHARE = np.array([0.01, 0.05, 0.15, 0.4])
_GAMMA_SHARE = np.array([0.01, 0.1, 0.3])
_PHIS = np.array([0.8, 0.9, 0.95, 0.98])


def _z(alpha):
    return NormalDist().inv_cdf(1 - alpha / 2)


def _grid(trend, season):
    """Columns ``alpha, beta, gamma, phi`` of the parameter grid."""
    a = _ALPHAS
    b = _BETA_SHARE if trend else np.array([0.0])
    g = _GAMMA_SHARE if season else np.array([0.0])
    p = _PHIS if trend else np.array([1.0])
    A, B, G, P = (v.ravel() for v in np.meshgrid(a, b, g, p, indexing="ij"))
    return A, B * A, G * (1 - A), P


def _initial_states(y, trend, m):
    """``(level, slope, season)``: the first value and the mean slope of the first four
    periods; with a season, the first season's mean, the slope between the first two
    seasons' means, and the two seasons' mean deviations."""
    if not m:
        n0 = min(len(y), 4)
        slope = float((y[n0 - 1] - y[0]) / max(n0 - 1, 1)) if trend else 0.0
        return float(y[0]), slope, None
    first = y[: 2 * m].reshape(2, m)
    season = (first - first.mean(axis=1, keepdims=True)).mean(axis=0)
    slope = float((first[1].mean() - first[0].mean()) / m) if trend else 0.0
    return float(first[0].mean()), slope, season


def _filter(y, trend, m):
    """Filter ``y`` with every grid point; return the grid, the SSE and the final states."""
    A, B, G, P = _grid(trend, m)
    k = len(A)
    level0, slope0, season0 = _initial_states(y, trend, m)
    level = np.full(k, level0)
    slope = np.full(k, slope0)
    season = None if season0 is None else np.tile(season0, (k, 1)).T.copy()  # (m, k)
    sse = np.zeros(k)
    for t, value in enumerate(y):
        s = season[t % m] if m else 0.0
        predicted = level + P * slope + s
        e = value - predicted
        sse += e * e
        new_level = level + P * slope + A * e
        slope = P * slope + B * e
        level = new_level
        if m:
            season[t % m] = s + G * e
    return (A, B, G, P), sse, (level, slope, season)


def ets(y, horizon, *, trend=False, m=None, alpha=0.05):
    """Fit additive-error ETS by least squares over a grid; forecast ``horizon`` steps.

    Parameters
    ----------
    y : array_like of float
        At least 3 values (``2 m`` with a season).
    horizon : int
    trend : bool
        A damped additive trend (``AAdN``/``AAdA``) instead of none.
    m : int, optional
        An additive season of ``m`` periods (``m >= 2``); None for none.
    alpha : float
        One minus the interval's coverage.

    Returns
    -------
    dict
        ``forecast``, ``lower``, ``upper``, ``model``, ``parameters``, ``sse``.
    """
    y = np.asarray(y, dtype=float)
    if m is not None and (m < 2 or len(y) < 2 * m):
        raise ValueError(f"m={m!r} needs m >= 2 and at least {2 * (m or 0)} values")
    if len(y) < 3:
        raise ValueError(f"ets needs at least 3 values, not {len(y)}")
    (A, B, G, P), sse, (level, slope, season) = _filter(y, trend, m)
    i = int(np.argmin(sse))
    a, b, g, phi = float(A[i]), float(B[i]), float(G[i]), float(P[i])
    steps = np.arange(1, horizon + 1)
    damped = np.cumsum(phi**steps) if trend else np.zeros(horizon)
    forecast = level[i] + damped * slope[i]
    if m:
        n = len(y)
        forecast = forecast + season[(n + steps - 1) % m, i]
    free = 2 + (3 if trend else 0) + (1 + m if m else 0)  # parameters and initial states
    sigma2 = float(sse[i]) / max(len(y) - free, 1)
    c = a + b * np.concatenate([[0.0], damped[:-1]]) if trend else np.full(horizon, a)
    if m:
        c = c + g * (np.arange(horizon) % m == 0) * (np.arange(horizon) > 0)
    c[0] = 0.0  # h = 1: sigma^2 alone
    half = _z(alpha) * np.sqrt(sigma2 * (1 + np.cumsum(c**2)))
    name = "ETS(A,{},{})".format("Ad" if trend else "N", "A" if m else "N")
    parameters = {"alpha": a, "beta": b, "gamma": g, "phi": phi}
    return {
        "forecast": forecast,
        "lower": forecast - half,
        "upper": forecast + half,
        "model": name,
        "parameters": {k: v for k, v in parameters.items() if v or k == "alpha"},
        "sse": float(sse[i]),
    }


def is_seasonal(y, m):
    """Whether ``y`` is seasonal at lag ``m``: at least two seasons and a lag-``m``
    autocorrelation beyond 1.645 of its standard error (Bartlett's), as the M3 Theta
    method tests it."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    if m < 2 or n < 2 * m:
        return False
    d = y - y.mean()
    denominator = float(np.dot(d, d))
    if denominator == 0:
        return False
    acf = np.array([np.dot(d[k:], d[: n - k]) / denominator for k in range(1, m + 1)])
    limit = 1.645 * math.sqrt((1 + 2 * float(np.sum(acf[:-1] ** 2))) / n)
    return abs(acf[-1]) > limit


def _seasonal_indices(y, m):
    """Classical decomposition: ``(indices, multiplicative)`` of a season of ``m``."""
    n = len(y)
    if m % 2:
        trend = np.convolve(y, np.ones(m) / m, mode="valid")
        offset = m // 2
    else:
        weights = np.r_[0.5, np.ones(m - 1), 0.5] / m
        trend = np.convolve(y, weights, mode="valid")
        offset = m // 2
    multiplicative = bool(np.all(y > 0))
    positions = np.arange(offset, offset + len(trend))
    ratio = y[positions] / trend if multiplicative else y[positions] - trend
    indices = np.array([ratio[(positions % m) == j].mean() for j in range(m)])
    if multiplicative:
        indices = indices / indices.mean()
    else:
        indices = indices - indices.mean()
    return indices, multiplicative, n


def theta(y, horizon, *, m=None, alpha=0.05):
    """The Theta method (SES with drift), deseasonalised when seasonal at lag ``m``.

    Parameters
    ----------
    y : array_like of float
        At least 3 values.
    horizon : int
    m : int, optional
        The season tested (and removed when significant).
    alpha : float

    Returns
    -------
    dict
        As :func:`ets`; ``parameters`` has ``alpha``, ``drift`` and ``seasonal``.
    """
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n < 3:
        raise ValueError(f"theta needs at least 3 values, not {n}")
    seasonal = m is not None and is_seasonal(y, m)
    adjusted = y
    if seasonal:
        indices, multiplicative, _ = _seasonal_indices(y, m)
        season = indices[np.arange(n) % m]
        adjusted = y / season if multiplicative else y - season
    fit = ets(adjusted, horizon, alpha=alpha)
    a = fit["parameters"]["alpha"]
    t = np.arange(n, dtype=float)
    b0 = float(np.polyfit(t, adjusted, 1)[0])
    steps = np.arange(1, horizon + 1)
    drift = 0.5 * b0 * (steps - 1 + 1 / a - (1 - a) ** n / a)
    forecast, lower, upper = (fit[k] + drift for k in ("forecast", "lower", "upper"))
    if seasonal:
        future = indices[(n + steps - 1) % m]
        if multiplicative:
            forecast, lower, upper = forecast * future, lower * future, upper * future
        else:
            forecast, lower, upper = forecast + future, lower + future, upper + future
    return {
        "forecast": forecast,
        "lower": lower,
        "upper": upper,
        "model": "Theta" + (f" (deseasonalised, lag {m})" if seasonal else ""),
        "parameters": {"alpha": a, "drift": b0 / 2, "seasonal": bool(seasonal)},
        "sse": fit["sse"],
    }
