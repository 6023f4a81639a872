"""Model choice by rolling-origin backtest: ARIMA, ETS, Theta and the seasonal naive.

:func:`models.forecast.forecast_series` with ``method="select"`` calls
:func:`select_and_forecast` for every history it fits (the final fit on the whole series,
and the fit on the backtest's fitted part, so that the reported backtest measures the
choice itself, out of sample).

The candidates (:func:`candidates`)
    ``seasonal naive``; ``ETS(A,N,N)`` and ``ETS(A,Ad,N)`` (and, for daily series with two
    weeks of history, ``ETS(A,N,A)`` and ``ETS(A,Ad,A)`` with the weekly season); ``Theta``
    (deseasonalised when the M3 test finds the season: 7 days, or 52 weeks); ``Optimized
    Theta`` (:class:`models.forecast_models.OptimizedTheta`: the weight of the drift, the
    smoothing and the initial level fitted, deseasonalised as Theta); for a series without
    negative values the ETS and Theta models on ``log1p`` too (forecast back with
    ``expm1``: the median); and one ``ARIMA`` on the original scale: ``d`` by the KPSS test
    of :mod:`models.forecast`, order ``(1, d, 1)``, a mean (``d = 0``) or a drift
    (``d = 1``) as ``auto.arima`` allows, the Fourier regressors the series is long enough
    for, in numpy (:func:`models.forecast_models.arima11`: least squares, then conditional
    sum of squares); it is estimated at the first origin, the later origins filter with
    those estimates, and it is re-estimated on the whole history when it wins.
    Last, ``combination``: the mean forecast and bounds of :data:`COMBINED` (``Theta`` and
    ``Optimized Theta``).
One pass for every ETS and Theta fit (:func:`_batched_pool`)
    Every ETS model on each scale, and Theta's SES on each origin's seasonally adjusted
    series when the season is found there, are the columns of one
    :class:`models.forecast_models.EtsBatch`: one loop over time for the whole choice, the
    SSE and states read at each origin and at the end. These are exactly the fits on each
    prefix (the initial states come from the first values); :func:`_reference_pool` fits
    each candidate on each prefix instead, the readable reference
    (``select_and_forecast(..., batched=False)``, several times slower). The optimised
    Theta of every origin is read from one :class:`~models.forecast_models.OptimizedTheta`
    pass over the series (one per origin when the season is removed).
The choice
    :data:`ORIGINS` forecast origins, ``step`` periods apart, the last one ``h`` periods
    before the end, with ``h = min(horizon, n // 4)`` and ``step = h`` (the windows do not
    overlap: ``ORIGINS x h`` held-out values, each scored once); each candidate is fitted
    on the history before each origin and forecasts the ``h`` periods after it; its score
    is the mean absolute error over all those forecasts. The ``combination`` wins unless a
    candidate's score is at least :data:`MARGIN` (25%) lower than its; then the lowest
    score wins (ties: the simpler candidate, in the order above). The winner is refitted on
    the whole history for the forecast. A candidate that raises or forecasts a value that
    is not finite is out (recorded in ``errors``). With fewer than ``MIN_SELECT_PERIODS``
    periods before the first origin there is no choice: ``ETS(A,N,N)``, or the seasonal
    naive below :data:`MIN_ETS_PERIODS`.
Why the combination first
    Three or four short windows rank near-equal candidates by noise: on the benchmark's
    200 weekly series (``benchmarks/bench_forecast.py``) the plain lowest score gave a
    median relative MAE (vs the seasonal naive) of 0.750 with 3 origins and 0.736 with 8,
    while the combination alone gives 0.690 (statsforecast's AutoTheta 0.690, AutoETS
    0.709) and, on the ``total`` series, 0.081 (AutoTheta 0.082). A candidate still wins
    where the backtest says so clearly (a pure trend, a strong season, CDNOW's weekly
    sales: 0.311, the best statsforecast model 0.360). A margin of 20% to 30% with 4 or
    more origins gave the same medians; with 3 origins or 10% it was 0.694-0.697. On the
    22 series of the built-in data the median is 0.424 (AutoTheta 0.413; the plain lowest
    score with the former combination of ETS(A,Ad,N), Theta and ARIMA had 0.373).
The record
    ``selection`` holds every candidate's score (None when it was out) and the origins;
    ``model`` the winner; ``aic`` is the ARIMA's CSS AIC when it wins.
"""

import time

import numpy as np

from models.forecast_models import (
    EtsBatch,
    OptimizedTheta,
    ets,
    optimized_theta,
    reseasonalised,
    theta,
    theta_adjusted,
    theta_output,
)

__all__ = [
    "COMBINED",
    "MARGIN",
    "MIN_ETS_PERIODS",
    "MIN_SELECT_PERIODS",
    "ORIGINS",
    "candidates",
    "select_and_forecast",
]

#: Forecast origins of the choice.
ORIGINS = 4
#: How much lower (a share of the combination's) a candidate's score must be to replace
#: the ``combination``.
MARGIN = 0.25
#: Periods of history before the first origin for a choice to be made.
MIN_SELECT_PERIODS = 12
#: Below this, only the seasonal naive.
MIN_ETS_PERIODS = 4
_SEASON = {"D": 7, "W": 52}


def _back(out):
    """A log1p model's result on the original scale (``expm1``: the median)."""
    return {**out, **{k: np.expm1(out[k]) for k in ("forecast", "lower", "upper")}}


def _log_model(fit):
    def fitted(y, days, h):
        return _back(fit(np.log1p(y), days, h))

    return fitted


def candidates(values, period, cfg):
    """``[(name, fit)]``: ``fit(y, days, h)`` returns ``forecast``, ``lower``, ``upper``
    (and optionally ``model``, ``order``, ``trend``, ``regressors``) for ``h`` steps."""
    alpha = cfg["alpha"]
    season = _SEASON[period]
    naive_lag = cfg["seasonal_lag"]
    from models import forecast as fm  # loaded: it is what calls this module

    def naive(y, days, h):
        m = fm._seasonal_lag(period, len(y), naive_lag)
        f, lo, hi = fm.seasonal_naive(y, h, m, alpha)
        return {"forecast": f, "lower": lo, "upper": hi, "model": f"seasonal naive (lag {m})"}

    def ann(y, days, h):
        return ets(y, h, alpha=alpha)

    def aadn(y, days, h):
        return ets(y, h, trend=True, alpha=alpha)

    def ana(y, days, h):
        return ets(y, h, m=season, alpha=alpha)

    def aada(y, days, h):
        return ets(y, h, trend=True, m=season, alpha=alpha)

    def theta_fit(y, days, h):
        return theta(y, h, m=season, alpha=alpha)

    def otm_fit(y, days, h):
        return optimized_theta(y, h, m=season, alpha=alpha)

    def arima(y, days, h, fitted=None):
        return fm._cheap_arima(y, days, h, cfg, fitted)

    arima.reuses_fit = True

    smooth = [("ETS(A,N,N)", ann), ("ETS(A,Ad,N)", aadn)]
    if period == "D":
        smooth += [("ETS(A,N,A)", ana), ("ETS(A,Ad,A)", aada)]
    smooth.append(("Theta", theta_fit))
    out = [("seasonal naive", naive), *smooth, ("Optimized Theta", otm_fit)]
    if np.all(values >= 0):
        out += [(f"{name} on log1p", _log_model(fit)) for name, fit in smooth]
    out.append(("ARIMA", arima))
    return out


def _reference_pool(values, days, ends, cfg):
    """``[(name, at)]`` of :func:`candidates`: ``at(end, steps)`` fits the candidate on the
    first ``end`` values and forecasts ``steps`` steps; the ARIMA reuses the fit of its
    previous origin, and is refitted at the end (``end = n``). The readable reference of
    :func:`_batched_pool` (``ends`` unused)."""
    n = len(values)

    def at_end(fit):
        memory = {"fitted": None}

        def at(end, steps):
            kwargs = {}
            if getattr(fit, "reuses_fit", False):
                kwargs["fitted"] = memory["fitted"] if end < n else None
            out = fit(values[:end], days[:end], steps, **kwargs)
            memory["fitted"] = out.get("fitted")
            return out

        return at

    return [(name, at_end(fit)) for name, fit in candidates(values, cfg["period"], cfg)]


def _batched_pool(values, days, ends, cfg):
    """:func:`_reference_pool`'s candidates with every ETS and Theta fit (each model, on
    each scale, at each origin and at the end) read from one :class:`EtsBatch` pass; the
    seasonal naive and the ARIMA are the reference ones (cheap: the ARIMA is estimated at
    the first origin only, and at the end when it wins)."""
    n = len(values)
    season = _SEASON[cfg["period"]]
    pool = _reference_pool(values, days, ends, cfg)
    names = [name for name, _ in pool]
    scales = {"": values.astype(float)}
    if any(name.endswith(" on log1p") for name in names):
        scales[" on log1p"] = np.log1p(values)
    batch = EtsBatch(n, season if "ETS(A,N,A)" in names else None)
    thetas = {}
    for suffix, y in scales.items():
        for name, trend, seasonal in _ETS:
            if name in names:
                batch.add(name + suffix, y, trend=trend, seasonal=seasonal)
        for end in [*ends, n]:
            adjusted, found = theta_adjusted(y[:end], season)
            key = "ETS(A,N,N)" + suffix if found is None else ("Theta", suffix, end)
            if found is not None:
                batch.add(key, adjusted)
            thetas[suffix, end] = key, adjusted, found
    batch.run([*ends, n])
    alpha = cfg["alpha"]
    whole = OptimizedTheta(values)  # every prefix of the series when it has no season

    def optimized(end, steps):
        _, adjusted, found = thetas["", end]
        model = whole if found is None else OptimizedTheta(adjusted)
        out = model.fit(end, steps, alpha)
        out["parameters"]["seasonal"] = found is not None
        return reseasonalised(out, found, end)

    def smooth(name):
        base, _, scale = name.partition(" on ")
        suffix = " on " + scale if scale else ""

        def at(end, steps):
            if base == "Theta":
                key, adjusted, found = thetas[suffix, end]
                out = theta_output(batch.fit(key, end, steps, alpha), adjusted, found, steps)
            else:
                out = batch.fit(base + suffix, end, steps, alpha)
            return _back(out) if suffix else out

        return at

    batched = {"Optimized Theta": optimized}
    return [
        (name, at if name in _REFERENCE_ONLY else batched.get(name) or smooth(name))
        for name, at in pool
    ]


_ETS = (
    ("ETS(A,N,N)", False, False),
    ("ETS(A,Ad,N)", True, False),
    ("ETS(A,N,A)", False, True),
    ("ETS(A,Ad,A)", True, True),
)
_REFERENCE_ONLY = ("seasonal naive", "ARIMA")


#: The candidates whose mean forecast (and mean bounds) is the ``combination`` candidate.
COMBINED = ("Theta", "Optimized Theta")


def _memoised(at):
    done = {}

    def cached(end, steps):
        if (end, steps) not in done:
            done[end, steps] = at(end, steps)
        return done[end, steps]

    return cached


def _with_combination(pool):
    """``pool`` with each fit kept (the combination reads them) and the ``combination``
    candidate last: the mean of the :data:`COMBINED` candidates' forecasts and bounds."""
    pool = [(name, _memoised(at)) for name, at in pool]
    fits = dict(pool)
    names = [name for name in COMBINED if name in fits]
    if len(names) < 2:
        return pool

    def combination(end, steps):
        outs = [fits[name](end, steps) for name in names]
        keys = ("forecast", "lower", "upper")
        label = (
            "combination (mean of "
            + ", ".join(out.get("model", name) for out, name in zip(outs, names, strict=True))
            + ")"
        )
        return {**{k: np.mean([out[k] for out in outs], axis=0) for k in keys}, "model": label}

    return [*pool, ("combination", combination)]


def _usable(at, end, steps, name, errors):
    try:
        out = at(end, steps)
    except Exception as exc:
        errors.append(f"{name}: {type(exc).__name__}: {exc}")
        return None
    bounds = np.concatenate([out["forecast"], out["lower"], out["upper"]])
    if not np.isfinite(bounds).all():
        errors.append(f"{name}: a forecast or bound is not finite")
        return None
    return out


def _origins(n, horizon):
    h = max(1, min(horizon, n // 4))
    step = h
    ends = [n - h - step * (ORIGINS - 1 - k) for k in range(ORIGINS)]
    return h, [e for e in ends if e >= MIN_SELECT_PERIODS]


def _score(at, name, values, h, ends, errors):
    """Mean absolute error of ``at`` over the origins, or None when it is out."""
    errs = []
    for end in ends:
        out = _usable(at, end, h, name, errors)
        if out is None:
            return None
        errs.append(np.abs(out["forecast"] - values[end : end + h]))
    return float(np.mean(np.concatenate(errs)))


def _scores(pool, values, h, ends, rec):
    """``{name: score or None}`` of every candidate, and the names in the order they are
    tried: the ``combination`` first unless a candidate's score is lower than its by
    :data:`MARGIN` or more, then by rising score (ties: the simpler, in the pool's
    order)."""
    scores = {}
    for name, at in pool:
        rec["candidates"] += 1
        scores[name] = _score(at, name, values, h, ends, rec["errors"])
    ranked = [name for name, _ in pool if scores[name] is not None]
    ranked.sort(key=lambda name: scores[name])  # a stable sort: ties keep the simpler
    default = scores.get("combination")
    if default is not None and scores[ranked[0]] > (1 - MARGIN) * default:
        ranked.remove("combination")
        ranked.insert(0, "combination")
    return scores, ranked


def select_and_forecast(rec, days, values, horizon, cfg, *, batched=True):
    """Choose a model for this history and forecast ``horizon`` steps with it.

    Parameters
    ----------
    rec : dict
        The fit record (:func:`models.forecast._record`), filled here.
    days, values : numpy.ndarray
        The history (finite values, at least one).
    horizon : int
    cfg : dict
        The run's configuration (``period``, ``alpha``, ``seasonal_lag``).
    batched : bool
        Read the ETS and Theta fits from one batched filter (:func:`_batched_pool`), or
        fit each candidate on each prefix (:func:`_reference_pool`): the same choice and
        forecast, the reference several times slower.

    Returns
    -------
    dict or None
        ``forecast``, ``lower``, ``upper``; None when not even the seasonal naive could.
    """
    t0 = time.perf_counter()
    n = len(values)
    h, ends = _origins(n, horizon)
    if ends:
        pool = (_batched_pool if batched else _reference_pool)(values, days, ends, cfg)
        pool = _with_combination(pool)
        scores, ranked = _scores(pool, values, h, ends, rec)
    else:
        pool, scores = _reference_pool(values, days, ends, cfg), {}
        rec["fallback"] = (
            f"too short for a choice ({n} periods; {MIN_SELECT_PERIODS} before the first of "
            f"{ORIGINS} origins needed)"
        )
        ranked = ["ETS(A,N,N)"] if n >= MIN_ETS_PERIODS else []
    ranked.append("seasonal naive")
    fits = dict(pool)
    for name in ranked:
        out = _usable(fits[name], n, horizon, name, rec["errors"])
        if out is not None:
            break
    else:
        return None
    rec["selection"] = {
        "scores": scores,
        "origins": [int(e) for e in ends],
        "horizon": h,
        "rule": (
            f"the combination unless a candidate's mean absolute error over the origins "
            f"is at least {MARGIN:.0%} lower; then the lowest"
        ),
    }
    _describe(rec, name, out)
    rec["seconds"] = round(time.perf_counter() - t0, 4)
    return {k: out[k] for k in ("forecast", "lower", "upper")}


def _describe(rec, name, out):
    """The winner's fields of the record."""
    rec["model"] = out.get("model", name)
    if name.endswith("on log1p") and not rec["model"].endswith("on log1p"):
        rec["model"] += " on log1p"
    rec["transform"] = "log1p" if name.endswith("on log1p") else "none"
    for key in ("order", "trend", "regressors", "aic"):
        if key in out:
            rec[key] = out[key]
    rec["converged"] = True
