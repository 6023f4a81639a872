"""Fast candidate forecasters in numpy: exponential smoothing (ETS), Theta, optimised Theta
and ARIMA(1,d,1).

Each takes a history ``y`` (a float array without gaps) and returns a dict with
``forecast``, ``lower`` and ``upper`` (the ``1 - alpha`` prediction interval) for
``horizon`` steps, ``model`` (a readable name), ``parameters`` and ``sse`` (the in-sample
one-step squared errors). They are the candidates of the rolling-origin model choice of
:mod:`models.forecast_select` beside the seasonal naive.

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
Optimised Theta (Fiorucci et al. 2016; :class:`OptimizedTheta`, :func:`optimized_theta`)
    Theta's state-space form with the weight of the drift (``theta``), the smoothing
    parameter and the initial level fitted by least squares (``alpha`` on a grid, the other
    two in closed form), deseasonalised as Theta is; statsforecast's ``OptimizedTheta``.
Many fits in one pass (:class:`EtsBatch`)
    The grids of several models, on several series (the log scale, the seasonally
    adjusted series of each origin), are columns of one filter; the SSE and states are
    read at each end asked for: the fit on a prefix is read at its end, with exactly
    :func:`ets`'s result (the initial states come from the first values only).
ARIMA(1,d,1) (:func:`arima11`) and KPSS (:func:`kpss_level`)
    A mean (``d = 0``) or a drift (``d = 1``) and regressors by least squares on the
    (differenced) series, then ARMA(1,1) on the residuals by conditional sum of squares:
    for each ``theta`` of a grid the best ``phi`` is a least-squares coefficient, so one
    pass over time fits them all. Gaussian intervals from the psi-weights (integrated when
    ``d = 1``). :func:`kpss_level` is statsmodels' KPSS test (``regression="c"``, automatic
    lags) in numpy; statsmodels is not needed.

Examples
--------
>>> y = np.array([10.0, 12.0, 11.0, 13.0, 12.0, 14.0, 13.0, 15.0])
>>> fit = ets(y, 3, trend=True)
>>> fit["model"], len(fit["forecast"])
('ETS(A,Ad,N)', 3)
"""

import functools
import math
from statistics import NormalDist

import numpy as np

__all__ = ["OptimizedTheta", "ets", "is_seasonal", "optimized_theta", "theta"]

_ALPHAS = np.linspace(0.02, 0.98, 25)
_BETA_SHARE = np.array([0.01, 0.05, 0.15, 0.4])
_GAMMA_SHARE = np.array([0.01, 0.1, 0.3])
_PHIS = np.array([0.8, 0.9, 0.95, 0.98])


def _z(alpha):
    return NormalDist().inv_cdf(1 - alpha / 2)


@functools.cache
def _grid(trend, season):
    """Columns ``alpha, beta, gamma, phi`` of the parameter grid (shared: not to be
    written to)."""
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
    params = (float(A[i]), float(B[i]), float(G[i]), float(P[i]))
    states = (level[i], slope[i], None if season is None else season[:, i])
    return _ets_output(params, states, float(sse[i]), len(y), horizon, trend, m, alpha)


def _ets_output(params, states, sse, n, horizon, trend, m, alpha):
    """:func:`ets`'s result from one grid point's parameters ``(alpha, beta, gamma, phi)``,
    final states ``(level, slope, season)`` and SSE on ``n`` values."""
    a, b, g, phi = params
    level, slope, season = states
    steps = np.arange(1, horizon + 1)
    damped = np.cumsum(phi**steps) if trend else np.zeros(horizon)
    forecast = level + damped * slope
    if m:
        forecast = forecast + season[(n + steps - 1) % m]
    free = 2 + (3 if trend else 0) + (1 + m if m else 0)  # parameters and initial states
    sigma2 = sse / max(n - free, 1)
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
        "sse": sse,
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
    adjusted, season = theta_adjusted(y, m)
    return theta_output(ets(adjusted, horizon, alpha=alpha), adjusted, season, horizon)


def theta_adjusted(y, m):
    """``(adjusted, season)``: ``y`` divided by (or less) its classical seasonal indices
    when :func:`is_seasonal` at lag ``m``, with ``season = (indices, multiplicative, m)``;
    else ``(y, None)``."""
    if m is None or not is_seasonal(y, m):
        return y, None
    indices, multiplicative, n = _seasonal_indices(y, m)
    season = indices[np.arange(n) % m]
    adjusted = y / season if multiplicative else y - season
    return adjusted, (indices, multiplicative, m)


def _slope(y):
    """The least-squares slope of ``y`` on ``0, 1, ..., n - 1``."""
    t = np.arange(len(y), dtype=float)
    t -= t.mean()
    return float(np.dot(t, y) / np.dot(t, t))


def theta_output(fit, adjusted, season, horizon):
    """:func:`theta`'s result from the SES ``fit`` of the ``adjusted`` series (the
    :func:`ets` result) and its ``season`` (:func:`theta_adjusted`)."""
    n = len(adjusted)
    a = fit["parameters"]["alpha"]
    b0 = _slope(adjusted)
    steps = np.arange(1, horizon + 1)
    drift = 0.5 * b0 * (steps - 1 + 1 / a - (1 - a) ** n / a)
    out = {k: fit[k] + drift for k in ("forecast", "lower", "upper")}
    out.update(
        model="Theta",
        parameters={"alpha": a, "drift": b0 / 2, "seasonal": season is not None},
        sse=fit["sse"],
    )
    return reseasonalised(out, season, n)


def reseasonalised(out, season, n):
    """``out`` (a fit of the first ``n`` values of the adjusted series) with its
    ``forecast``, ``lower`` and ``upper`` re-seasonalised by ``season``
    (:func:`theta_adjusted`), and the model's name saying so; ``out`` when None."""
    if season is None:
        return out
    indices, multiplicative, m = season
    future = indices[(n + np.arange(len(out["forecast"]))) % m]
    op = np.multiply if multiplicative else np.add
    return {
        **out,
        **{k: op(out[k], future) for k in ("forecast", "lower", "upper")},
        "model": out["model"] + f" (deseasonalised, lag {m})",
    }


# -- the optimised Theta model ------------------------------------------------------------

#: The smoothing parameters of :class:`OptimizedTheta` (statsforecast's bounds: 0.1..0.99).
_OTM_ALPHAS = np.round(np.arange(0.10, 0.995, 0.01), 2)


class OptimizedTheta:
    """The optimised Theta model (Fiorucci et al. 2016, statsforecast's ``OptimizedTheta``)
    of every prefix of ``y``, from one pass over time.

    The model: ``y_t = mu_t + e_t``, ``mu_t = l_{t-1} + (1 - 1/theta) [(1 - alpha)^(t-1)
    A + (1 - (1 - alpha)^t) / alpha B]``, ``l_t = alpha y_t + (1 - alpha) l_{t-1}``, with
    ``A`` and ``B`` the least-squares intercept and slope of the history on ``t = 1..n``;
    ``theta >= 1`` (``theta = 2`` is the classical Theta method, ``theta = 1`` simple
    exponential smoothing). For each ``alpha`` of a grid (0.10..0.99), the errors are
    linear in the initial level ``l_0`` and in ``(1 - 1/theta) B``: both are least
    squares, in closed form (``1 - 1/theta`` kept in ``[0, 1]``), and the ``alpha`` of the
    least SSE wins. The level path does not depend on either, so one filter of the whole
    series gives every prefix's sums (cumulated over time): :meth:`fit` on the first
    ``end`` values is the same fit as on ``y[:end]`` alone. Intervals: those of simple
    exponential smoothing, ``var_h = sigma^2 (1 + (h - 1) alpha^2)``.

    Parameters
    ----------
    y : array_like of float
        The history (its prefixes of at least 3 values can be fitted).

    Examples
    --------
    >>> fit = OptimizedTheta(np.arange(20.0)).fit(20, 2)
    >>> np.round(fit["forecast"], 6).tolist()
    [20.0, 21.0]
    """

    def __init__(self, y):
        y = np.asarray(y, dtype=float)
        self.y = y
        a = _OTM_ALPHAS
        q = 1.0 - a
        n = len(y)
        level = np.full(len(a), y[0] if n else 0.0)
        R = np.empty((n, len(a)))  # one-step errors of SES started at y[0]
        L = np.empty((n, len(a)))  # the level after each value
        for t, value in enumerate(y):
            R[t] = value - level
            level = level + a * R[t]
            L[t] = level
        t = np.arange(n, dtype=float)[:, None]
        W = q**t  # the error's sensitivity to the initial level
        C = (1.0 - q ** (t + 1)) / a  # ... and to (1 - 1/theta) B
        self._levels = L
        self._sums = {
            name: np.cumsum(u, axis=0)
            for name, u in (
                ("rr", R * R),
                ("rw", R * W),
                ("rc", R * C),
                ("ww", W * W),
                ("wc", W * C),
                ("cc", C * C),
            )
        }

    def fit(self, end, horizon, alpha=0.05):
        """The fit on ``y[:end]`` and its forecast of ``horizon`` steps.

        Returns
        -------
        dict
            ``forecast``, ``lower``, ``upper``, ``model`` ("Optimized Theta"),
            ``parameters`` (``alpha``; ``drift_weight``, ``1 - 1/theta`` in [0, 1], 1 for an
            infinite theta; ``level0``), ``sse``.
        """
        if end < 3 or end > len(self.y):
            raise ValueError(f"the optimised Theta needs 3..{len(self.y)} values, not {end}")
        s = {name: v[end - 1] for name, v in self._sums.items()}
        slope = _slope(self.y[:end])
        det = s["ww"] * s["cc"] - s["wc"] ** 2
        safe = np.where(det > 0, det, 1.0)
        v = np.where(det > 0, (s["ww"] * s["rc"] - s["wc"] * s["rw"]) / safe, 0.0)
        k = np.clip(v / slope, 0.0, 1.0) if slope != 0 else np.zeros_like(v)
        v = k * slope
        u = (s["rw"] - v * s["wc"]) / s["ww"]
        sse = (
            (s["rr"] - 2 * u * s["rw"] - 2 * v * s["rc"])
            + u * u * s["ww"]
            + 2 * u * v * s["wc"]
            + v * v * s["cc"]
        )
        j = int(np.argmin(sse))
        a, q = float(_OTM_ALPHAS[j]), 1.0 - float(_OTM_ALPHAS[j])
        steps = np.arange(1, horizon + 1)
        forecast = (
            self._levels[end - 1, j] + u[j] * q**end + v[j] * ((1 - q ** (end + 1)) / a + steps - 1)
        )
        sse_j = max(float(sse[j]), 0.0)
        sigma2 = sse_j / max(end - 3, 1)
        half = _z(alpha) * np.sqrt(sigma2 * (1 + (steps - 1) * a * a))
        return {
            "forecast": forecast,
            "lower": forecast - half,
            "upper": forecast + half,
            "model": "Optimized Theta",
            "parameters": {
                "alpha": a,
                "drift_weight": float(k[j]),
                "level0": float(self.y[0] + u[j]),
            },
            "sse": sse_j,
        }


def optimized_theta(y, horizon, *, m=None, alpha=0.05):
    """The optimised Theta model (:class:`OptimizedTheta`), deseasonalised when seasonal at
    lag ``m`` as :func:`theta` is.

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
        As :func:`ets`; ``parameters`` has ``alpha``, ``drift_weight``, ``level0`` and
        ``seasonal``.
    """
    y = np.asarray(y, dtype=float)
    if len(y) < 3:
        raise ValueError(f"the optimised Theta needs at least 3 values, not {len(y)}")
    adjusted, season = theta_adjusted(y, m)
    out = OptimizedTheta(adjusted).fit(len(y), horizon, alpha)
    out["parameters"]["seasonal"] = season is not None
    return reseasonalised(out, season, len(y))


# -- many ETS fits in one pass -----------------------------------------------------------


class EtsBatch:
    """Many :func:`ets` fits filtered in one pass over time, read at several ends.

    Each :meth:`add` appends one model's grid on one series as columns of a single filter
    (one Python loop over time, vector operations over every column); :meth:`run`
    records the cumulative SSE and the states at each requested end; :meth:`fit` then
    gives what :func:`ets` returns on the first ``end`` values. It is the same fit: the
    initial states come from the first values only, so a fit on a prefix ``y[:end]`` has
    the SSE and final states the filter of the whole series has at ``end``.

    Parameters
    ----------
    n : int
        The filter's length; every series added has at most ``n`` values (the rest of its
        columns is padded with zeros, whose filtering is never read).
    m : int, optional
        The season of the seasonal models added (one per batch).

    Examples
    --------
    >>> y = np.array([10.0, 12.0, 11.0, 13.0, 12.0, 14.0, 13.0, 15.0])
    >>> batch = EtsBatch(len(y))
    >>> batch.add("AAdN", y, trend=True)
    >>> batch.run([6, 8])
    >>> batched = batch.fit("AAdN", 6, 2)["forecast"]
    >>> bool(np.allclose(batched, ets(y[:6], 2, trend=True)["forecast"]))
    True
    """

    def __init__(self, n, m=None):
        self.n, self.m = n, m
        self._blocks = {}  # key -> (columns slice, trend, seasonal, length)
        self._parts = []
        self._width = 0

    def add(self, key, y, *, trend=False, seasonal=False):
        """Add the grid of ETS with (damped) ``trend`` and/or the batch's season on ``y``."""
        y = np.asarray(y, dtype=float)
        m = self.m if seasonal else None
        A, B, G, P = _grid(trend, m)
        k = len(A)
        if len(y) < max(3, 2 * m if m else 0):
            level0, slope0, season0 = 0.0, 0.0, None  # too short: fit() raises
        else:
            level0, slope0, season0 = _initial_states(y, trend, m)
        column = np.zeros(self.n)
        column[: len(y)] = y
        cols = slice(self._width, self._width + k)
        self._parts.append((cols, column, (A, B, G, P), (level0, slope0, season0)))
        self._blocks[key] = (cols, trend, m, len(y))
        self._width += k

    def run(self, ends):
        """Filter every column; keep the SSE and states at each of ``ends``."""
        n, k, m = self.n, self._width, self.m
        Y = np.empty((n, k))
        grid = tuple(np.empty(k) for _ in range(4))
        level, slope = np.empty(k), np.empty(k)
        season = np.zeros((m, k)) if m else None
        for cols, column, block_grid, (level0, slope0, season0) in self._parts:
            Y[:, cols] = column[:, None]
            for whole, part in zip(grid, block_grid, strict=True):
                whole[cols] = part
            level[cols], slope[cols] = level0, slope0
            if season0 is not None:
                season[:, cols] = season0[:, None]
        self._ends = set(ends)
        self._states = {}
        E = _filter_columns(Y, grid, (level, slope, season), m, self._ends, self._states)
        np.square(E, out=E)
        self._sse = np.cumsum(E, axis=0, out=E)  # sequential: the same sums as ets()
        self._grid = grid

    def fit(self, key, end, horizon, alpha=0.05):
        """What ``ets(y[:end], horizon, ...)`` returns for the series added as ``key``."""
        cols, trend, m, length = self._blocks[key]
        if end > length or end not in self._ends:
            raise ValueError(f"{key!r} was not filtered to end={end}")
        if m is not None and end < 2 * m:
            raise ValueError(f"m={m!r} needs m >= 2 and at least {2 * m} values")
        if end < 3:
            raise ValueError(f"ets needs at least 3 values, not {end}")
        sse = self._sse[end - 1, cols]
        i = cols.start + int(np.argmin(sse))
        level, slope, season = self._states[end]
        params = tuple(float(v[i]) for v in self._grid)
        states = (level[i], slope[i], None if m is None else season[:, i])
        return _ets_output(
            params, states, float(self._sse[end - 1, i]), end, horizon, trend, m, alpha
        )


def _filter_columns(Y, grid, states, m, ends, snapshots):
    """The filter of :func:`_filter` on every column of ``Y`` at once (column ``j`` with
    the parameters ``grid[.][j]`` from the states ``states[.][j]``); returns the one-step
    errors ``(n, k)`` and puts ``(level, slope, season)`` at each of ``ends`` into
    ``snapshots``. The arithmetic is :func:`_filter`'s, operation for operation."""
    A, B, G, P = grid
    level, slope, season = states
    E = np.empty_like(Y)
    for t in range(len(Y)):
        ps = P * slope
        base = level + ps
        if m:
            s = season[t % m]
            e = np.subtract(Y[t], base + s, out=E[t])
            season[t % m] = s + G * e
        else:
            e = np.subtract(Y[t], base, out=E[t])
        level = base + A * e
        slope = ps + B * e
        if t + 1 in ends:
            snapshots[t + 1] = (level, slope, None if season is None else season.copy())
    return E


# -- KPSS and ARIMA(1,d,1) ----------------------------------------------------------------

_KPSS_CRITICAL = np.array([0.347, 0.463, 0.574, 0.739])  # regression="c"
_KPSS_PVALUES = np.array([0.10, 0.05, 0.025, 0.01])


def _autocovariance_sums(r, lags):
    """``[sum_t r[t] r[t - k] for k in 1..lags]``."""
    n = len(r)
    return [float(np.dot(r[k:], r[: n - k])) for k in range(1, lags + 1)]


def kpss_level(x):
    """The KPSS test of level stationarity, as statsmodels'
    ``kpss(x, regression="c", nlags="auto")`` computes it.

    Parameters
    ----------
    x : array_like of float
        At least 2 values.

    Returns
    -------
    statistic, pvalue : float
        The p-value is interpolated in Kwiatkowski et al.'s table (0.10 .. 0.01, clipped).
    lags : int
        The Newey-West truncation lag (Hobijn et al.'s data-dependent choice).
    """
    r = np.asarray(x, dtype=float)
    r = r - r.mean()
    n = len(r)
    covlags = int(np.power(n, 2.0 / 9.0))
    s0 = float(np.dot(r, r)) / n
    s1 = 0.0
    for i, product in enumerate(_autocovariance_sums(r, covlags), start=1):
        s0 += product / (n / 2.0)
        s1 += i * product / (n / 2.0)
    gamma = 1.1447 * np.power((s1 / s0) ** 2, 1.0 / 3.0)
    lags = min(int(gamma * np.power(n, 1.0 / 3.0)), n - 1)
    eta = float(np.sum(np.cumsum(r) ** 2)) / n**2
    s_hat = float(np.dot(r, r))
    for i, product in enumerate(_autocovariance_sums(r, lags), start=1):
        s_hat += 2 * product * (1.0 - i / (lags + 1.0))
    statistic = eta / (s_hat / n)
    return statistic, float(np.interp(statistic, _KPSS_CRITICAL, _KPSS_PVALUES)), lags


#: The MA coefficients searched, the simplest (0) first so that ties keep it.
_THETAS = np.array(sorted(np.arange(-98, 99) / 100, key=abs))
_PHI_BOUND = 0.98


def _css_arma11(u):
    """``(phi, theta)`` minimising the conditional sum of squares of ARMA(1,1) on ``u``.

    The residuals ``e_t = u_t - phi u_{t-1} - theta e_{t-1}`` (``t >= 1``, ``e_0 = 0``)
    are linear in ``phi`` for a given ``theta``: ``e = a - phi b`` with ``a`` and ``b``
    the filters ``1 / (1 + theta L)`` of ``u_t`` and ``u_{t-1}``. So every ``theta`` of
    :data:`_THETAS` is filtered at once (one pass over time) and its best ``phi`` is the
    least-squares ``a.b / b.b``, clipped to ``+-0.98`` (the sum of squares is a parabola in
    ``phi``, so the clipped value is the constrained minimum).
    """
    k = len(_THETAS)
    inputs = np.empty((len(u) - 1, 2 * k))
    inputs[:, :k] = u[1:, None]
    inputs[:, k:] = u[:-1, None]
    thetas = np.concatenate([_THETAS, _THETAS])
    filtered = np.empty_like(inputs)
    state = np.zeros(2 * k)
    for t in range(len(inputs)):
        state = np.subtract(inputs[t], thetas * state, out=filtered[t])
    a, b = filtered[:, :k], filtered[:, k:]
    aa, ab, bb = (np.einsum("ij,ij->j", p, q) for p, q in ((a, a), (a, b), (b, b)))
    scale = max(float(aa.max()), 1e-300)
    phi = np.where(bb > 1e-12 * scale, ab / np.where(bb > 0, bb, 1.0), 0.0)
    phi = np.clip(phi, -_PHI_BOUND, _PHI_BOUND)
    css = aa - 2 * phi * ab + phi**2 * bb
    i = int(np.argmin(np.round(css / scale, 12)))  # rounding: ties go to the simpler
    return float(phi[i]), float(_THETAS[i])


def _arma11_residuals(u, phi, theta):
    """The residuals ``e`` of :func:`_css_arma11` (``e_0 = 0``) and their sum of squares."""
    e = [0.0]
    for t in range(1, len(u)):
        e.append(float(u[t]) - phi * float(u[t - 1]) - theta * e[-1])
    e = np.array(e)
    return e, float(np.dot(e, e))


def arima11(y, horizon, *, d, X=None, Xf=None, alpha=0.05, fixed=None):
    """ARIMA(1,d,1) with a mean (``d = 0``) or a drift (``d = 1``) and regressors, in numpy.

    The regression part (the constant and ``X``, differenced with ``y`` when ``d = 1``) is
    fitted by ordinary least squares, then ARMA(1,1) on its residuals by conditional sum
    of squares (:func:`_css_arma11`: ``theta`` on a grid of step 0.01 within ``+-0.98``,
    ``phi`` exact given ``theta``). The forecast continues the residuals' ARMA recursion
    (``u_{n+1} = phi u_n + theta e_n``, then ``phi`` per step) on top of the regression,
    cumulated from the last value when ``d = 1``; the interval is Gaussian with the
    psi-weights ``1, (phi + theta) phi^(j-1)`` (cumulated when ``d = 1``) and ``sigma^2``
    the CSS over its degrees of freedom.

    Parameters
    ----------
    y : array_like of float
        The history; at least ``d + 4`` values more than regression columns.
    horizon : int
    d : {0, 1}
    X, Xf : numpy.ndarray, optional
        Regressors in the history ``(n, r)`` and over the horizon ``(horizon, r)``.
    alpha : float
        One minus the interval's coverage.
    fixed : dict, optional
        ``fixed`` of an earlier result: keep its coefficients, filter ``y`` only.

    Returns
    -------
    dict
        ``forecast``, ``lower``, ``upper``, ``parameters`` (``phi``, ``theta``,
        ``sigma2``, ``coef``: the constant first), ``aic`` (the CSS AIC of the
        differenced series, ``n' log(2 pi CSS / n') + n' + 2 k``; None when the fit is
        exact) and ``fixed``.
    """
    y = np.asarray(y, dtype=float)
    z = np.diff(y) if d else y
    design, future = _arima_design(len(z), d, X, Xf, horizon)
    if len(z) < design.shape[1] + 3:
        raise ValueError(
            f"ARIMA(1,{d},1) with {design.shape[1]} regression columns needs at least "
            f"{design.shape[1] + 3 + d} values, not {len(y)}"
        )
    if fixed is None:
        coef = np.linalg.lstsq(design, z, rcond=None)[0]
        phi, theta = _css_arma11(z - design @ coef)
    else:
        coef, phi, theta = fixed["coef"], fixed["phi"], fixed["theta"]
    u = z - design @ coef
    e, css = _arma11_residuals(u, phi, theta)
    steps = np.arange(horizon)
    u_future = (phi * u[-1] + theta * e[-1]) * phi**steps
    psi = np.concatenate([[1.0], (phi + theta) * phi ** steps[:-1]])
    forecast = future @ coef + u_future
    if d:
        forecast = y[-1] + np.cumsum(forecast)
        psi = np.cumsum(psi)
    n_eff, k = len(u) - 1, 2 + len(coef)
    sigma2 = css / max(n_eff - k, 1)
    half = _z(alpha) * np.sqrt(sigma2 * np.cumsum(psi**2))
    aic = n_eff * (math.log(2 * math.pi * css / n_eff) + 1) + 2 * (k + 1) if css > 0 else None
    parameters = {"phi": phi, "theta": theta, "sigma2": sigma2, "coef": [float(c) for c in coef]}
    return {
        "forecast": forecast,
        "lower": forecast - half,
        "upper": forecast + half,
        "parameters": parameters,
        "aic": aic,
        "fixed": {"coef": coef, "phi": phi, "theta": theta},
    }


def _arima_design(n, d, X, Xf, horizon):
    """The regression design of :func:`arima11` in the fit ``(n, 1 + r)`` and over the
    horizon: a constant (a mean when ``d = 0``, a drift when ``d = 1``), then the
    regressors (their differences when ``d = 1``)."""
    design, future = [np.ones((n, 1))], [np.ones((horizon, 1))]
    if X is not None:
        design.append(np.diff(X, axis=0) if d else X)
        future.append(np.diff(np.vstack([X[-1:], Xf]), axis=0) if d else Xf)
    return np.hstack(design), np.hstack(future)
