"""Model choice by rolling-origin backtest: ARIMA, ETS, Theta and the seasonal naive.

:func:`models.forecast.forecast_series` with ``method="select"`` calls
:func:`select_and_forecast` for every history it fits (the final fit on the whole series,
and the fit on the backtest's fitted part, so that the reported backtest measures the
choice itself, out of sample).

The candidates (:func:`candidates`)
    ``seasonal naive``; ``ETS(A,N,N)`` and ``ETS(A,Ad,N)`` (and, for daily series with two
    weeks of history, ``ETS(A,N,A)`` and ``ETS(A,Ad,A)`` with the weekly season); ``Theta``
    (deseasonalised when the M3 test finds the season: 7 days, or 52 weeks); for a series
    without negative values the ETS and Theta models on ``log1p`` too (forecast back with
    ``expm1``: the median); and one ``ARIMA`` on the original scale: ``d`` by the KPSS test
    of :mod:`models.forecast`, order ``(1, d, 1)``, a mean (``d = 0``) or a drift
    (``d = 1``) as ``auto.arima`` allows, the Fourier regressors the series is long enough
    for. ETS and Theta are numpy (:mod:`models.forecast_models`), a millisecond or two
    each; the ARIMA is one statsmodels state-space fit at the first origin, whose
    parameters the later origins reuse (the filter only), and a refit on the whole
    history when it wins.
The choice
    :data:`ORIGINS` forecast origins, ``step`` periods apart, the last one ``h`` periods
    before the end, with ``h = min(horizon, n // 4)`` and ``step = h`` (the windows do not
    overlap: 3 x h held-out values, each scored once); each
    candidate is fitted on the history before each origin and forecasts the ``h`` periods
    after it; its score is the mean absolute error over all those forecasts. The lowest
    score wins (ties: the simpler candidate, in the order above) and is refitted on the whole
    history for the forecast. A candidate that raises or forecasts a value that is not
    finite is out (recorded in ``errors``). With fewer than ``MIN_SELECT_PERIODS`` periods
    before the first origin there is no choice: ``ETS(A,N,N)``, or the seasonal naive below
    :data:`MIN_ETS_PERIODS`.
The record
    ``selection`` holds every candidate's score (None when it was out) and the origins;
    ``model`` the winner.
"""

import time

import numpy as np

from models.forecast_models import ets, theta

__all__ = ["MIN_ETS_PERIODS", "MIN_SELECT_PERIODS", "ORIGINS", "candidates", "select_and_forecast"]

#: Forecast origins of the choice.
ORIGINS = 3
#: Periods of history before the first origin for a choice to be made.
MIN_SELECT_PERIODS = 12
#: Below this, only the seasonal naive.
MIN_ETS_PERIODS = 4
_SEASON = {"D": 7, "W": 52}


def _log_model(fit):
    def fitted(y, days, h):
        out = fit(np.log1p(y), days, h)
        return {**out, **{k: np.expm1(out[k]) for k in ("forecast", "lower", "upper")}}

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

    def arima(y, days, h, fitted=None):
        return fm._cheap_arima(y, days, h, cfg, fitted)

    arima.reuses_fit = True

    smooth = [("ETS(A,N,N)", ann), ("ETS(A,Ad,N)", aadn)]
    if period == "D":
        smooth += [("ETS(A,N,A)", ana), ("ETS(A,Ad,A)", aada)]
    smooth.append(("Theta", theta_fit))
    out = [("seasonal naive", naive), *smooth]
    if np.all(values >= 0):
        out += [(f"{name} on log1p", _log_model(fit)) for name, fit in smooth]
    out.append(("ARIMA", arima))
    return out


def _usable(fit, y, days, h, name, errors, **kwargs):
    try:
        out = fit(y, days, h, **kwargs)
    except Exception as exc:
        errors.append(f"{name}: {type(exc).__name__}: {exc}")
        return None
    if not all(np.all(np.isfinite(out[k])) for k in ("forecast", "lower", "upper")):
        errors.append(f"{name}: a forecast or bound is not finite")
        return None
    return out


def _origins(n, horizon):
    h = max(1, min(horizon, n // 4))
    step = h
    ends = [n - h - step * (ORIGINS - 1 - k) for k in range(ORIGINS)]
    return h, [e for e in ends if e >= MIN_SELECT_PERIODS]


def _score(fit, name, values, days, h, ends, errors):
    """Mean absolute error of ``fit`` over the origins, or None when it is out."""
    errs = []
    fitted = None
    for end in ends:
        kwargs = {"fitted": fitted} if getattr(fit, "reuses_fit", False) else {}
        out = _usable(fit, values[:end], days[:end], h, name, errors, **kwargs)
        if out is None:
            return None
        fitted = out.get("fitted")
        errs.append(np.abs(out["forecast"] - values[end : end + h]))
    return float(np.mean(np.concatenate(errs)))


def select_and_forecast(rec, days, values, horizon, cfg):
    """Choose a model for this history and forecast ``horizon`` steps with it.

    Parameters
    ----------
    rec : dict
        The fit record (:func:`models.forecast._record`), filled here.
    days, values : numpy.ndarray
        The history (finite values, at least one).
    horizon : int
    cfg : dict
        The run's configuration (``period``, ``alpha``, ``seasonal_lag``, ``maxiter``).

    Returns
    -------
    dict or None
        ``forecast``, ``lower``, ``upper``; None when not even the seasonal naive could.
    """
    t0 = time.perf_counter()
    n = len(values)
    pool = candidates(values, cfg["period"], cfg)
    h, ends = _origins(n, horizon)
    scores = {}
    if ends:
        for name, fit in pool:
            rec["candidates"] += 1
            scores[name] = _score(fit, name, values, days, h, ends, rec["errors"])
    ranked = [name for name, _ in pool if scores.get(name) is not None]
    ranked.sort(key=lambda name: scores[name])  # a stable sort: ties keep the simpler
    if not ends:
        rec["fallback"] = (
            f"too short for a choice ({n} periods; {MIN_SELECT_PERIODS} before the first of "
            f"{ORIGINS} origins needed)"
        )
        ranked = ["ETS(A,N,N)"] if n >= MIN_ETS_PERIODS else []
    ranked.append("seasonal naive")
    fits = dict(pool)
    for name in ranked:
        out = _usable(fits[name], values, days, horizon, name, rec["errors"])
        if out is not None:
            break
    else:
        return None
    rec["selection"] = {
        "scores": scores,
        "origins": [int(e) for e in ends],
        "horizon": h,
        "rule": "lowest mean absolute error over the origins",
    }
    rec["model"] = out.get("model", name)
    if name.endswith("on log1p") and not rec["model"].endswith("on log1p"):
        rec["model"] += " on log1p"
    rec["transform"] = "log1p" if name.endswith("on log1p") else "none"
    for key in ("order", "trend", "regressors", "aic"):
        if key in out:
            rec[key] = out[key]
    rec["converged"] = True
    rec["seconds"] = round(time.perf_counter() - t0, 4)
    return {k: out[k] for k in ("forecast", "lower", "upper")}
