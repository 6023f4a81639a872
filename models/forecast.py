"""Per-series ARIMA forecasts of small regular series, with a backtest against the seasonal naive.

Input
-----
Small regular series, one value per period: daily (``"D"``) or weekly (``"W"``, weeks
starting on Monday, each period named by its Monday), such as the per-series revenue,
quantity, orders or customers the sales MapReduce job writes for the series ``total``, the
top items and ``__other__``. :func:`forecast_series` takes a long
:class:`pandas.DataFrame` (columns ``series``, ``period``, and the value column named by
``value``), a mapping ``name -> pandas.Series`` indexed by period start dates, or one
:class:`pandas.Series`. Periods missing inside a series' own span are filled with zeros (no
sales) and counted (``filled``); a duplicated period, or a weekly period that is not a
Monday, is an error.

One model per series
--------------------
Every series is fitted on its own (in a process of its own with ``processes > 1``); nothing
one series does can stop another.

Transform
    ``transform="auto"`` (the default) runs the grid below twice for a series without
    negative values, on ``log1p(y)`` and on ``y``, and keeps the model with the lower AIC
    on the original scale (the log model's AIC plus the Jacobian term
    ``2 * sum(log1p(y))``, the Box-Cox likelihood comparison); a series with a negative
    value is modelled as is. Retail seasonality is often multiplicative (the generator's is
    ``weekly x yearly x trend``), hence additive on the log scale; an additive series keeps
    the original scale. ``"log1p"`` or ``"none"`` force one scale. A log model's forecast
    and interval bounds are transformed back with ``expm1``: the point forecast is then
    the median of the predictive distribution (which is what MAE rewards), not its mean.
Seasonality: Fourier terms as regressors
    Seasonal ARIMA is impractical for a yearly season of 365.25 days (or 52.18 weeks), so
    seasonality enters as exogenous Fourier terms ``sin(2 pi k t / P), cos(2 pi k t / P)``
    of the period's date ``t`` in days since 1970-01-01 (so they continue exactly into the
    forecast horizon):

    * weekly, daily series only: ``P = 7`` days, ``k = 1..3`` (with six terms this is a
      full day-of-week profile), when the series has at least 21 periods (three weeks);
    * yearly: ``P = 365.25`` days, ``k = 1..2``, when the series spans at least 1.5 years
      (548 days, or 79 weeks). A yearly cycle seen fewer than one and a half times cannot
      be told apart from the trend; at 1.5 the two harmonics and the trend are identified,
      so two years of data less a backtest of a few weeks keep the yearly terms.
Differencing
    ``d`` is chosen before the grid, as ``auto.arima`` does, because AIC values of models
    with a different ``d`` are not comparable: the (transformed) series is regressed on a
    constant, a linear trend and the Fourier terms, and a KPSS test (statsmodels'
    :func:`~statsmodels.tsa.stattools.kpss`, ``regression="c"``) on the residuals with a p
    value below 0.05 (not level-stationary) gives ``d = 1``, else ``d = 0``.
The grid (:data:`ORDER_GRID`, :data:`TRENDS`), chosen by AIC
    ``(p, q)`` with ``p, q in {0, 1, 2}`` and ``p + q <= 2`` (six orders), each with two
    trends: ``"c"`` (constant) and ``"ct"`` (constant + linear trend) when ``d = 0``;
    ``"n"`` (none) and ``"t"`` (a drift) when ``d = 1``: twelve (per scale)
    :class:`statsmodels.tsa.arima.model.ARIMA` fits (state-space maximum likelihood,
    ``maxiter`` iterations). A candidate counts only when it converged (``mle_retvals``),
    its AIC is finite and its forecast and interval bounds are finite; the lowest AIC wins.
Fits in isolation, and the fallback chain
    Every fit runs under :func:`warnings.catch_warnings` ``(record=True)``: each warning
    text is recorded for the series (``warnings``, deduplicated, with counts) instead of
    reaching the terminal; a ``ConvergenceWarning`` or ``converged = False`` makes the
    candidate count as not converged (``nonconverged``); an exception in a fit is recorded
    (``errors``) and the candidate is skipped. When no candidate counts, the fallback is
    ``ARIMA(0,1,1)`` on the original scale without regressors or trend (simple exponential
    smoothing); when that also fails, the **seasonal naive** forecast (below). The reason
    is in ``fallback``. A series shorter than :data:`MIN_ARIMA_PERIODS`, or constant, goes
    straight to the seasonal naive. A series that not even the seasonal naive can forecast
    (no value, or a value that is not finite) is reported with ``status = "failed"`` and
    an ``error`` and has no forecast rows; the run goes on.

Seasonal naive, and the backtest
--------------------------------
The seasonal lag ``m`` is 7 for daily series and 52 for weekly ones (the yearly season),
used when the fitted part has at least ``1.25 m`` periods (so the in-sample scale averages
at least a quarter season of differences); otherwise ``m = 1`` (the naive forecast). It
can be forced with ``seasonal_lag``. The seasonal naive forecast repeats the last season:
``y[n - m + (h - 1) mod m]`` for step ``h``; its interval is
``+- z * s * sqrt(floor((h - 1) / m) + 1)`` with ``s`` the root mean square of the
in-sample seasonal differences.

The backtest holds out the last ``backtest_periods`` periods (default 28 days or 8 weeks),
runs the whole procedure above (transform, regressors, ``d``, grid, fallbacks) on the rest,
forecasts the held-out periods and reports per series:

* ``mae``: mean absolute error;
* ``mape``: mean of ``|error| / |actual|`` in percent over the actuals that are not zero;
  ``mape_ignored`` counts the zeros left out (``mape`` is NaN when every actual is zero);
* ``mase``: ``mae`` divided by ``scale``, the in-sample mean absolute seasonal difference
  ``mean |y[t] - y[t - m]|`` of the fitted part (Hyndman and Koehler's MASE). NaN when the
  scale is zero (a constant fitted part), and ``note`` says so;
* ``naive_mae`` and ``relative_mae``: the seasonal naive forecast's own MAE on the same
  held-out periods and ``mae / naive_mae`` (below 1: better than the naive out of sample);
* ``coverage``: the share of held-out actuals inside the prediction interval.

Outputs (:class:`ForecastResult`)
---------------------------------
``forecasts``
    ``series``, ``period`` (Timestamp, start of the period), ``step`` (1..horizon),
    ``forecast``, ``lower``, ``upper`` (the ``1 - alpha`` prediction interval) and
    ``model``. With ``nonnegative`` (the default when the series has no negative value)
    the three are clipped at 0.
``fits``
    One row per series and stage (``"final"`` on the whole series, ``"backtest"`` on the
    fitted part of the backtest): ``n``, ``filled``, ``status`` (``ok``, ``fallback`` or
    ``failed``), ``model``, ``order``, ``trend``, ``regressors``, ``transform``, ``aic`` (on
    the original scale),
    ``converged``, ``candidates``, ``nonconverged``, ``fallback``, ``warnings``,
    ``errors``, ``error``, ``seconds``.
``backtest``
    One row per series: ``n`` (held-out periods), ``model``, ``seasonal_lag``, ``mae``,
    ``mape``, ``mape_ignored``, ``mase``, ``scale``, ``naive_mae``, ``relative_mae``,
    ``coverage``, ``note``.

Parallelism and progress
------------------------
With ``processes = 1`` the series are fitted in this process; otherwise a
:class:`concurrent.futures.ProcessPoolExecutor` with that many workers fits one series per
task. The fits are deterministic, so the results do not depend on ``processes``.
``progress(message)`` is called with counts as series finish (about twenty times).

Limits
------
* Cost: with ``transform="auto"`` a model selection is 24 ARIMA fits, and the backtest
  adds a second selection: about 1-3 s per weekly series of two years on one core here.
* A partial first or last period (a week the log covers for only some days) looks like a
  collapse or a spike: give full periods only.
* On a weekly series of less than two years the lag-52 MASE scale compares the second
  year with the first (on CDNOW, with the launch ramp of early 1997) and is large; compare
  ``relative_mae`` too, or force ``seasonal_lag=1``.
* Intervals are Gaussian on the modelled scale (so asymmetric after ``expm1``) and do not
  include the uncertainty of the model choice.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from models.checks import check_int

__all__ = [
    "DEFAULT_BACKTEST",
    "MIN_ARIMA_PERIODS",
    "ORDER_GRID",
    "TRENDS",
    "ForecastResult",
    "forecast_series",
    "fourier_terms",
    "seasonal_naive",
]

PERIODS = ("D", "W")
#: ``arima``: the AIC grid below; ``select``: the rolling-origin choice of
#: :mod:`models.forecast_select`.
METHODS = ("arima", "select")
_STEP_DAYS = {"D": 1, "W": 7}
#: Held-out periods of the backtest by default: four weeks of days, or eight weeks.
DEFAULT_BACKTEST = {"D": 28, "W": 8}
#: ``(p, q)`` orders of the grid: ``p, q in {0, 1, 2}``, ``p + q <= 2``.
ORDER_GRID = ((0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2))
#: Trends of the grid by ``d``.
TRENDS = {0: ("c", "ct"), 1: ("n", "t")}
#: Below this many periods the grid is not tried: the seasonal naive is used.
MIN_ARIMA_PERIODS = 12
_FALLBACK_ORDER = (0, 1, 1)
_SEASON_LAG = {"D": 7, "W": 52}
_WEEKLY_FOURIER = (7.0, 3)  # period in days, harmonics
_YEARLY_FOURIER = (365.25, 2)
_WEEKLY_MIN_PERIODS = 21
_YEARLY_MIN_DAYS = 1.5 * 365.25
_KPSS_ALPHA = 0.05
_TRANSFORMS = ("auto", "log1p", "none")
_EPOCH = np.datetime64("1970-01-01", "D")


@dataclass
class ForecastResult:
    """What :func:`forecast_series` returns (columns in the module docstring).

    Attributes
    ----------
    forecasts : pandas.DataFrame
    fits : pandas.DataFrame
    backtest : pandas.DataFrame
    parameters : dict
        The arguments used (``backtest_periods`` resolved).
    """

    forecasts: pd.DataFrame
    fits: pd.DataFrame
    backtest: pd.DataFrame
    parameters: dict = field(default_factory=dict)

    def failed(self):
        """Names of the series whose final fit failed (no forecast)."""
        f = self.fits
        return list(f.loc[(f["stage"] == "final") & (f["status"] == "failed"), "series"])


# -- public helpers ------------------------------------------------------------------------


def fourier_terms(days, period_days, harmonics):
    """Fourier regressors of dates given as day numbers.

    Parameters
    ----------
    days : array-like of int
        Days since 1970-01-01.
    period_days : float
        The season's length in days (7, 365.25).
    harmonics : int
        Number of sine/cosine pairs.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(days), 2 * harmonics)``: ``sin, cos`` of ``2 pi k days / period``,
        ``k = 1..harmonics``.

    Examples
    --------
    >>> fourier_terms([0, 7], 7.0, 1).round(12).tolist()
    [[0.0, 1.0], [-0.0, 1.0]]
    """
    t = np.asarray(days, dtype=float) / period_days
    cols = []
    for k in range(1, harmonics + 1):
        cols += [np.sin(2 * np.pi * k * t), np.cos(2 * np.pi * k * t)]
    return np.column_stack(cols)


def seasonal_naive(y, horizon, lag, alpha=0.05):
    """Seasonal naive forecast with its prediction interval.

    Parameters
    ----------
    y : array-like of float
        The history (at least one value; prior validation is assumed).
    horizon : int
        Steps ahead.
    lag : int
        The season ``m``; reduced to ``len(y)`` when the history is shorter.
    alpha : float
        One minus the interval's coverage.

    Returns
    -------
    forecast, lower, upper : numpy.ndarray
        ``y[n - m + (h - 1) mod m]``, and ``+- z s sqrt(floor((h - 1) / m) + 1)`` with ``s``
        the root mean square of the in-sample differences at lag ``m`` (NaN bounds when
        there is no such difference).

    Examples
    --------
    >>> f, lo, hi = seasonal_naive([1.0, 2.0, 1.0, 2.0], 3, 2)
    >>> f.tolist(), lo.tolist() == f.tolist()
    ([1.0, 2.0, 1.0], True)
    """
    y = np.asarray(y, dtype=float)
    n = len(y)
    m = max(1, min(int(lag), n))
    steps = np.arange(horizon)
    forecast = y[n - m + steps % m]
    diffs = y[m:] - y[:-m]
    if len(diffs):
        s = math.sqrt(float(np.mean(diffs**2)))
        half = _z(alpha) * s * np.sqrt(steps // m + 1)
    else:
        half = np.full(horizon, np.nan)
    return forecast, forecast - half, forecast + half


# -- the public entry point ---------------------------------------------------------------


def forecast_series(
    data,
    *,
    period,
    horizon,
    backtest_periods=None,
    value="value",
    alpha=0.05,
    transform="auto",
    seasonal_lag=None,
    maxiter=50,
    processes=1,
    progress=None,
    method="arima",
):
    """Fit one ARIMA per series, forecast ``horizon`` periods and backtest the last ones.

    Parameters
    ----------
    data : pandas.DataFrame, mapping of str to pandas.Series, or pandas.Series
        A long frame with columns ``series``, ``period`` (start dates) and ``value``; or
        ``name -> Series`` indexed by period start dates; or one Series (named by its
        ``name``, else ``"series"``).
    period : {"D", "W"}
        Daily, or weekly with weeks starting on Monday.
    horizon : int
        Periods to forecast after the last one (>= 1).
    backtest_periods : int, optional
        Periods held out at the end for the backtest; 0 skips it. Default 28 for daily,
        8 for weekly series.
    value : str
        The value column of a long frame (e.g. ``"revenue"``).
    alpha : float
        Prediction intervals cover ``1 - alpha`` (0 < alpha < 1).
    transform : {"auto", "log1p", "none"}
        ``auto``: both scales for a series without negative values, by AIC.
    seasonal_lag : int, optional
        The seasonal naive's lag ``m`` (default: see the module docstring).
    maxiter : int
        Maximum optimizer iterations per ARIMA fit.
    processes : int
        1 fits in this process; more uses that many worker processes.
    progress : callable, optional
        ``progress(message)`` with counts as series finish.
    method : {"arima", "select"}
        ``arima``: the ARIMA grid by AIC (the module docstring); ``select``: the choice
        between ARIMA, ETS, Theta and the seasonal naive by rolling-origin backtest
        (:mod:`models.forecast_select`).

    Returns
    -------
    ForecastResult
        ``forecasts``, ``fits`` and ``backtest`` frames (columns in the module docstring).

    Raises
    ------
    ValueError
        An argument out of range, a missing column, a duplicated period, or a weekly
        period that is not a Monday.

    Notes
    -----
    No series can stop the run: fit errors, convergence failures and unforecastable
    series are recorded in ``fits`` (see :meth:`ForecastResult.failed`).

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=60, freq="D")
    >>> y = pd.Series(10 + (idx.dayofweek >= 5) * 5.0, index=idx)
    >>> result = forecast_series({"total": y}, period="D", horizon=7)  # doctest: +SKIP
    >>> result.forecasts.columns.tolist()  # doctest: +SKIP
    ['series', 'period', 'step', 'forecast', 'lower', 'upper', 'model']
    """
    if period not in PERIODS:
        raise ValueError(f"period={period!r} should be one of {PERIODS}")
    check_int("horizon", horizon, 1)
    if backtest_periods is None:
        backtest_periods = DEFAULT_BACKTEST[period]
    check_int("backtest_periods", backtest_periods, 0)
    check_int("maxiter", maxiter, 1)
    check_int("processes", processes, 1)
    if seasonal_lag is not None:
        check_int("seasonal_lag", seasonal_lag, 1)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} should be a number between 0 and 1 (exclusive)")
    if transform not in _TRANSFORMS:
        raise ValueError(f"transform={transform!r} should be one of {_TRANSFORMS}")
    if method not in METHODS:
        raise ValueError(f"method={method!r} should be one of {METHODS}")
    if progress is not None and not callable(progress):
        raise ValueError(f"progress={progress!r} should be a callable or None")

    series = _to_series(data, period, value)
    config = {
        "period": period,
        "horizon": int(horizon),
        "backtest_periods": int(backtest_periods),
        "alpha": float(alpha),
        "transform": transform,
        "seasonal_lag": None if seasonal_lag is None else int(seasonal_lag),
        "maxiter": int(maxiter),
        "method": method,
    }
    tasks = [(name, days, values, filled, config) for name, (days, values, filled) in series]
    outcomes = _run_all(tasks, int(processes), progress)
    return _assemble(outcomes, {**config, "processes": int(processes), "value": value})


# -- input --------------------------------------------------------------------------------


def _to_series(data, period, value):
    """``[(name, (days, values, filled))]`` in input order; gaps filled with zeros."""
    if isinstance(data, pd.DataFrame):
        missing = [c for c in ("series", "period", value) if c not in data.columns]
        if missing:
            raise ValueError(
                f"data is missing the column(s) {missing}; it has {list(data.columns)} "
                f"(value={value!r} names the value column)"
            )
        groups = [
            (str(name), pd.Series(g[value].to_numpy(), index=g["period"].to_numpy()))
            for name, g in data.groupby("series", sort=False)
        ]
    elif isinstance(data, pd.Series):
        groups = [(str(data.name) if data.name is not None else "series", data)]
    elif isinstance(data, Mapping):
        groups = []
        for name, s in data.items():
            if not isinstance(s, pd.Series):
                raise ValueError(f"data[{name!r}] is a {type(s).__name__}, not a pandas Series")
            groups.append((str(name), s))
    else:
        raise ValueError(
            f"data is a {type(data).__name__}: it should be a DataFrame, a mapping of "
            "names to Series, or a Series"
        )
    step = _STEP_DAYS[period]
    out = []
    for name, s in groups:
        try:
            dates = pd.DatetimeIndex(pd.to_datetime(s.index))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"series {name!r}: periods are not dates ({exc})") from None
        if dates.tz is not None:
            dates = dates.tz_localize(None)
        days = dates.to_numpy().astype("datetime64[D]")
        if (dates != dates.normalize()).any():
            raise ValueError(f"series {name!r}: periods should be dates without a time of day")
        values = pd.to_numeric(pd.Series(s.to_numpy()), errors="coerce").to_numpy(dtype=float)
        order = np.argsort(days, kind="stable")
        days, values = days[order], values[order]
        dup = days[1:][days[1:] == days[:-1]]
        if len(dup):
            raise ValueError(f"series {name!r}: period {dup[0]} appears more than once")
        nums = (days - _EPOCH).astype(np.int64)
        if period == "W" and len(nums):
            bad = nums[(nums + 3) % 7 != 0]  # 1970-01-01 was a Thursday
            if len(bad):
                raise ValueError(
                    f"series {name!r}: weekly period {_EPOCH + int(bad[0])} is not a Monday "
                    "(weeks start on Monday)"
                )
        if len(nums) and np.any((nums - nums[0]) % step):
            bad = nums[(nums - nums[0]) % step != 0][0]
            raise ValueError(f"series {name!r}: period {_EPOCH + int(bad)} is off the grid")
        filled = 0
        if len(nums):
            full = np.arange(nums[0], nums[-1] + 1, step)
            filled = len(full) - len(nums)
            if filled:
                dense = np.zeros(len(full))
                dense[(nums - nums[0]) // step] = values
                nums, values = full, dense
        out.append((name, (nums, values, filled)))
    return out


# -- running ------------------------------------------------------------------------------


def _run_all(tasks, processes, progress):
    """Run :func:`_run_series` on every task; outcomes in task order.

    BLAS is limited to one thread before the workers start, so that forked workers start
    single-threaded too (limiting it only inside each worker left them 50% slower).
    """
    with _one_blas_thread():
        return _run_all_limited(tasks, processes, progress)


def _run_all_limited(tasks, processes, progress):
    total = len(tasks)
    every = max(1, total // 20)
    counts = Counter()

    def report(outcome, done):
        counts[outcome["final"]["status"]] += 1
        if progress is not None and (done % every == 0 or done == total):
            progress(
                f"{done:,}/{total:,} series fitted ({counts['fallback']:,} fallback, "
                f"{counts['failed']:,} failed)"
            )

    if processes == 1 or total <= 1:
        outcomes = []
        for i, task in enumerate(tasks, 1):
            outcomes.append(_run_series(task))
            report(outcomes[-1], i)
        return outcomes
    outcomes = [None] * total
    with ProcessPoolExecutor(max_workers=min(processes, total)) as pool:
        futures = {pool.submit(_run_series, task): i for i, task in enumerate(tasks)}
        for done, future in enumerate(as_completed(futures), 1):
            i = futures[future]
            try:
                outcomes[i] = future.result()
            except Exception as exc:  # a worker that died: the series is reported
                outcomes[i] = _crashed(tasks[i], exc)
            report(outcomes[i], done)
    return outcomes


def _crashed(task, exc):
    name = task[0]
    error = f"{type(exc).__name__}: {exc}"
    record = _record(len(task[2]), task[3], status="failed", error=error)
    return {"series": name, "final": record, "forecast": None, "backtest": None}


def _run_series(task):
    """Fit, forecast and backtest one series. Never raises (prior validation is assumed).

    BLAS runs single-threaded here: the state-space filter does many tiny matrix products,
    and a threaded BLAS in each worker process spends its time in thread hand-offs (the
    built-in data's 22 weekly series took 157 s in 2 processes with two BLAS threads per
    process, 29 s with one).
    """
    with _one_blas_thread():
        return _run_series_unlimited(task)


_BLAS = []


def _one_blas_thread():
    """A context in which BLAS runs one thread. The loaded libraries are found once per
    process (a ``threadpool_limits`` call looks them up again: 0.3 ms a series)."""
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


def _run_series_unlimited(task):
    name, days, values, filled, cfg = task
    try:
        final, forecast = _fit_and_forecast(days, values, cfg["horizon"], cfg)
        final["filled"] = filled
        backtest = None
        b = cfg["backtest_periods"]
        if b:
            backtest = _backtest(days, values, b, cfg, filled)
        return {"series": name, "final": final, "forecast": forecast, "backtest": backtest}
    except Exception as exc:  # a bug of ours must not stop the other series either
        return _crashed(task, exc)


def _backtest(days, values, b, cfg, filled):
    n = len(values)
    row = dict.fromkeys(
        ("model", "seasonal_lag", "mae", "mape", "mape_ignored", "mase", "scale"), None
    )
    row.update(n=b, naive_mae=None, relative_mae=None, coverage=None, note=None, fit=None)
    if n - b < 2:
        row["note"] = f"too short for a backtest of {b} periods ({n} periods)"
        return row
    actual = values[n - b :]
    train = values[: n - b]
    record, fc = _fit_and_forecast(days[: n - b], train, b, cfg)
    record["filled"] = filled
    row["fit"] = record
    row["model"] = record["model"]
    if fc is None:
        row["note"] = f"no forecast: {record['error']}"
        return row
    if not np.all(np.isfinite(actual)):
        row["note"] = "held-out values are not all finite"
        return row
    m = record["seasonal_lag"]
    row["seasonal_lag"] = m
    row["scale"] = float(np.mean(np.abs(train[m:] - train[:-m]))) if len(train) > m else 0.0
    naive, _, _ = seasonal_naive(train, b, m, cfg["alpha"])
    row["naive_mae"] = float(np.mean(np.abs(naive - actual)))
    row.update(backtest_metrics(actual, fc["forecast"], fc["lower"], fc["upper"], row))
    row["held_out"] = {
        "days": days[n - b :],
        **{k: np.asarray(v, dtype=float) for k, v in (("actual", actual), *_bounds(fc))},
    }
    return row


def _bounds(fc):
    return [(k, fc[k]) for k in ("forecast", "lower", "upper")]


def backtest_metrics(actual, forecast, lower, upper, row):
    """The backtest's error figures of ``forecast`` (and its bounds) on the held-out
    ``actual`` values, with the seasonal naive's in-sample ``row["scale"]`` and held-out
    ``row["naive_mae"]``.

    Returns
    -------
    dict
        ``mae``, ``mape`` (zeros left out), ``mape_ignored``, ``mase`` (None when the scale
        is 0), ``relative_mae`` (None when the naive's MAE is 0), ``coverage`` and ``note``.
    """
    actual, forecast = np.asarray(actual, dtype=float), np.asarray(forecast, dtype=float)
    err = np.abs(forecast - actual)
    mae = float(np.mean(err))
    nonzero = actual != 0
    ignored = int(np.sum(~nonzero))
    notes = []
    if row["scale"] <= 0:
        notes.append("zero in-sample seasonal naive error: MASE undefined")
    if ignored:
        notes.append(f"MAPE leaves out {ignored} zero actual(s)")
    inside = (actual >= np.asarray(lower)) & (actual <= np.asarray(upper))
    return {
        "mae": mae,
        "mape": float(np.mean(err[nonzero] / np.abs(actual[nonzero])) * 100)
        if nonzero.any()
        else None,
        "mape_ignored": ignored,
        "mase": mae / row["scale"] if row["scale"] > 0 else None,
        "relative_mae": mae / row["naive_mae"] if row["naive_mae"] > 0 else None,
        "coverage": float(np.mean(inside)),
        "note": "; ".join(notes) or None,
    }


# -- one series ---------------------------------------------------------------------------


def _record(n, filled=0, **fields):
    rec = {
        "n": n,
        "filled": filled,
        "status": "ok",
        "model": None,
        "order": None,
        "trend": None,
        "regressors": None,
        "transform": None,
        "seasonal_lag": None,
        "aic": None,
        "converged": None,
        "candidates": 0,
        "nonconverged": 0,
        "fallback": None,
        "warnings": [],
        "errors": [],
        "error": None,
        "seconds": None,
        "selection": None,
    }
    rec.update(fields)
    return rec


def _seasonal_lag(period, n, forced):
    if forced is not None:
        return forced
    m = _SEASON_LAG[period]
    return m if n >= 1.25 * m else 1


def _fit_and_forecast(days, values, horizon, cfg):
    """``(record, forecast)`` for one history; ``forecast`` is None when it failed."""
    t0 = time.perf_counter()
    n = len(values)
    rec = _record(n)
    step = _STEP_DAYS[cfg["period"]]
    rec["seasonal_lag"] = m = _seasonal_lag(cfg["period"], n, cfg["seasonal_lag"])
    if n == 0:
        return _failed(rec, "no periods", t0)
    bad = ~np.isfinite(values)
    if bad.any():
        where = _EPOCH + int(days[np.argmax(bad)])
        return _failed(rec, f"{int(bad.sum())} value(s) not finite (first at {where})", t0)
    nonnegative = bool(np.all(values >= 0))
    transform = cfg["transform"]
    if transform == "log1p" and not nonnegative:
        return _failed(rec, "transform='log1p' needs values >= 0", t0)
    if transform == "auto":
        scales = ("log1p", "none") if nonnegative else ("none",)
    else:
        scales = (transform,)
    rec["transform"] = scales[0]
    future = days[-1] + step * np.arange(1, horizon + 1)
    fc = None
    if cfg.get("method") == "select":
        from models.forecast_select import select_and_forecast

        fc = select_and_forecast(rec, days, values, horizon, cfg)
    elif n < MIN_ARIMA_PERIODS:
        rec["fallback"] = f"too short for ARIMA ({n} < {MIN_ARIMA_PERIODS} periods)"
    elif np.ptp(values) == 0:
        rec["fallback"] = "constant series"
    else:
        best = None
        for scale in scales:
            y = np.log1p(values) if scale == "log1p" else values.astype(float)
            found = _fit_grid(rec, y, days, future, cfg)
            if found is None:
                continue
            aic, info, f = found
            if scale == "log1p":
                # AIC of the same model on the original scale: add the Jacobian term
                aic += 2 * float(np.sum(y))
                f = {k: np.expm1(v) for k, v in f.items()}
                if not all(np.all(np.isfinite(v)) for v in f.values()):
                    rec["errors"].append("log1p model: forecast overflows after expm1")
                    continue
            if best is None or aic < best[0]:
                best = (aic, {**info, "transform": scale}, f)
        if best is not None:
            aic, info, fc = best
            rec.update(info, aic=aic, converged=True)
            rec["model"] += " on log1p" if info["transform"] == "log1p" else ""
        else:
            rec["fallback"] = (
                f"no grid candidate usable ({rec['nonconverged']} of {rec['candidates']} "
                f"did not converge, {len(rec['errors'])} raised)"
            )
            fc = _fit_fallback_arima(rec, values.astype(float), horizon, cfg)
    if fc is None:
        f, lo, hi = seasonal_naive(values, horizon, m, cfg["alpha"])
        fc = {"forecast": f, "lower": lo, "upper": hi}
        rec["model"] = f"seasonal naive (lag {min(m, n)})"
        rec["status"] = "fallback"
        rec["transform"] = "none"
        rec.update(order=None, trend=None, regressors=None, aic=None, converged=None)
    elif rec["fallback"]:
        rec["status"] = "fallback"
    if nonnegative:
        fc = {k: np.maximum(v, 0.0) for k, v in fc.items()}
    fc["days"] = future
    rec["warnings"] = [f"{text} (x{k})" if k > 1 else text for text, k in rec["warnings"]]
    rec["seconds"] = round(time.perf_counter() - t0, 4)
    return rec, fc


def _failed(rec, error, t0):
    rec.update(status="failed", error=error, seconds=round(time.perf_counter() - t0, 4))
    rec["warnings"] = []
    return rec, None


def _regressors(days, future, period):
    """``(names, X, X_future)`` of the Fourier terms the series is long enough for."""
    n = len(days)
    span = days[-1] - days[0] + _STEP_DAYS[period]
    blocks, names = [], []
    if period == "D" and n >= _WEEKLY_MIN_PERIODS:
        blocks.append(_WEEKLY_FOURIER)
    if span >= _YEARLY_MIN_DAYS:
        blocks.append(_YEARLY_FOURIER)
    if not blocks:
        return [], None, None
    X = np.hstack([fourier_terms(days, p, k) for p, k in blocks])
    Xf = np.hstack([fourier_terms(future, p, k) for p, k in blocks])
    names = [f"fourier({p:g} days, {k})" for p, k in blocks]
    return names, X, Xf


def _choose_d(y, X):
    """1 when a KPSS test (:func:`models.forecast_models.kpss_level`, statsmodels' test in
    numpy) rejects level stationarity of y less trend and seasonality."""
    from models.forecast_models import kpss_level

    t = np.arange(len(y), dtype=float)
    design = np.column_stack([np.ones_like(t), t] + ([X] if X is not None else []))
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    if np.ptp(resid) < 1e-12 * max(1.0, float(np.max(np.abs(y)))):
        return 0
    _, pvalue, _ = kpss_level(resid)
    return 1 if pvalue < _KPSS_ALPHA else 0


def _fit_one(y, X, order, trend, maxiter):
    """One ARIMA fit with its warnings: ``(result, warning texts, converged)``."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.arima.model import ARIMA

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = ARIMA(y, exog=X, order=order, trend=trend)
        result = model.fit(method_kwargs={"maxiter": maxiter})
    texts = [f"{w.category.__name__}: {w.message}" for w in caught]
    converged = bool(result.mle_retvals.get("converged", True)) if result.mle_retvals else True
    converged = converged and not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return result, texts, converged


def _note_warnings(rec, texts):
    seen = dict(rec["warnings"]) if rec["warnings"] else {}
    for text in texts:
        seen[text] = seen.get(text, 0) + 1
    rec["warnings"] = list(seen.items())


def _predict(result, horizon, Xf, alpha):
    pred = result.get_forecast(horizon, exog=Xf)
    mean = np.asarray(pred.predicted_mean, dtype=float)
    ci = np.asarray(pred.conf_int(alpha=alpha), dtype=float)
    return {"forecast": mean, "lower": ci[:, 0], "upper": ci[:, 1]}


def _fit_grid(rec, y, days, future, cfg):
    """``(aic, info, forecast)`` of the best-AIC usable candidate of the grid on ``y``, or
    None; counts, warnings and errors go to ``rec``."""
    names, X, Xf = _regressors(days, future, cfg["period"])
    d = _choose_d(y, X)
    best = None
    for p, q in ORDER_GRID:
        for trend in TRENDS[d]:
            rec["candidates"] += 1
            try:
                result, texts, converged = _fit_one(y, X, (p, d, q), trend, cfg["maxiter"])
            except Exception as exc:
                rec["errors"].append(f"ARIMA({p},{d},{q}) trend={trend}: {exc}")
                continue
            _note_warnings(rec, texts)
            if not converged:
                rec["nonconverged"] += 1
                continue
            aic = float(result.aic)
            if not math.isfinite(aic) or (best is not None and aic >= best[0]):
                continue
            try:
                fc = _predict(result, len(future), Xf, cfg["alpha"])
            except Exception as exc:
                rec["errors"].append(f"ARIMA({p},{d},{q}) trend={trend} forecast: {exc}")
                continue
            if not all(np.all(np.isfinite(v)) for v in fc.values()):
                rec["errors"].append(f"ARIMA({p},{d},{q}) trend={trend}: non-finite forecast")
                continue
            best = (aic, (p, d, q), trend, fc)
    if best is None:
        return None
    aic, order, trend, fc = best
    extra = " + ".join(names)
    model = "ARIMA({},{},{})".format(*order) + f" trend={trend}" + (f" + {extra}" if extra else "")
    info = {"order": list(order), "trend": trend, "regressors": names, "model": model}
    return aic, info, fc


def _cheap_arima(y, days, horizon, cfg, fitted=None):
    """The ARIMA candidate of the rolling-origin choice, in numpy
    (:func:`models.forecast_models.arima11`): ``d`` by KPSS (:func:`_choose_d`),
    ``(1, d, 1)`` with a mean (``d = 0``) or a drift (``d = 1``), as ``auto.arima`` allows
    (a trend is the ETS and Theta candidates' business), and the Fourier regressors; the
    regression by least squares, the ARMA part by conditional sum of squares, ``aic`` the
    CSS one.

    With ``fitted`` (what an earlier call on a prefix of ``y`` returned as ``fitted``), its
    ``d`` and coefficients are kept and only the filter runs on ``y``: the later origins
    of the choice reuse the first origin's estimates, which saw no data after it.
    """
    from models.forecast_models import arima11

    step = _STEP_DAYS[cfg["period"]]
    future = days[-1] + step * np.arange(1, horizon + 1)
    names, X, Xf = _regressors(days, future, cfg["period"])
    if fitted is not None and fitted["regressors"] == names:
        d, fixed = fitted["order"][1], fitted["fixed"]
    else:
        d, fixed = _choose_d(y, X), None
    out = arima11(y, horizon, d=d, X=X, Xf=Xf, alpha=cfg["alpha"], fixed=fixed)
    trend = "c" if d == 0 else "t"  # a mean, or a drift: as auto.arima allows
    extra = " + ".join(names)
    model = f"ARIMA(1,{d},1) trend={trend}" + (f" + {extra}" if extra else "")
    info = {"order": [1, d, 1], "trend": trend, "regressors": names, "aic": out["aic"]}
    fc = {k: out[k] for k in ("forecast", "lower", "upper")}
    return {**fc, "model": model, **info, "fitted": {**info, "fixed": out["fixed"]}}


def _fit_fallback_arima(rec, y, horizon, cfg):
    """ARIMA(0,1,1) without regressors or trend; fills ``rec``; None when it fails."""
    order = _FALLBACK_ORDER
    rec["candidates"] += 1
    try:
        result, texts, converged = _fit_one(y, None, order, "n", cfg["maxiter"])
        _note_warnings(rec, texts)
        if not converged:
            rec["nonconverged"] += 1
            rec["fallback"] += "; ARIMA(0,1,1) did not converge"
            return None
        fc = _predict(result, horizon, None, cfg["alpha"])
    except Exception as exc:
        rec["errors"].append(f"ARIMA(0,1,1): {exc}")
        rec["fallback"] += "; ARIMA(0,1,1) raised"
        return None
    if not all(np.all(np.isfinite(v)) for v in fc.values()):
        rec["fallback"] += "; ARIMA(0,1,1) gave a non-finite forecast"
        return None
    rec.update(
        order=list(order),
        trend="n",
        regressors=[],
        aic=float(result.aic),
        converged=True,
        transform="none",
        model="ARIMA(0,1,1)",
    )
    rec["fallback"] += "; used ARIMA(0,1,1)"
    return fc


# -- output -------------------------------------------------------------------------------


_FIT_COLUMNS = [
    "series",
    "stage",
    "n",
    "filled",
    "status",
    "model",
    "order",
    "trend",
    "regressors",
    "transform",
    "seasonal_lag",
    "aic",
    "converged",
    "candidates",
    "nonconverged",
    "fallback",
    "warnings",
    "errors",
    "error",
    "seconds",
    "selection",
]
_FORECAST_COLUMNS = ["series", "period", "step", "forecast", "lower", "upper", "model"]
_BACKTEST_COLUMNS = [
    "series",
    "n",
    "model",
    "seasonal_lag",
    "mae",
    "mape",
    "mape_ignored",
    "mase",
    "scale",
    "naive_mae",
    "relative_mae",
    "coverage",
    "note",
]


def _assemble(outcomes, parameters):
    fits, forecasts, backtests = [], [], []
    for o in outcomes:
        name = o["series"]
        fits.append({"series": name, "stage": "final", **o["final"]})
        fc = o["forecast"]
        if fc is not None:
            k = len(fc["forecast"])
            forecasts.append(
                pd.DataFrame(
                    {
                        "series": name,
                        "period": pd.to_datetime(_EPOCH + fc["days"].astype("timedelta64[D]")),
                        "step": np.arange(1, k + 1),
                        "forecast": fc["forecast"],
                        "lower": fc["lower"],
                        "upper": fc["upper"],
                        "model": o["final"]["model"],
                    }
                )
            )
        bt = o["backtest"]
        if bt is not None:
            if bt["fit"] is not None:
                fits.append({"series": name, "stage": "backtest", **bt["fit"]})
            backtests.append({"series": name, **{c: bt[c] for c in _BACKTEST_COLUMNS[1:]}})
    fits_df = pd.DataFrame(fits, columns=_FIT_COLUMNS)
    if forecasts:
        fc_df = pd.concat(forecasts, ignore_index=True)
    else:
        fc_df = pd.DataFrame(columns=_FORECAST_COLUMNS)
    bt_df = pd.DataFrame(backtests, columns=_BACKTEST_COLUMNS)
    for col in ("mae", "mape", "mase", "scale", "naive_mae", "relative_mae", "coverage"):
        bt_df[col] = pd.to_numeric(bt_df[col]).astype(float)
    return ForecastResult(fc_df, fits_df, bt_df, parameters)


def _z(alpha):
    from statistics import NormalDist

    return NormalDist().inv_cdf(1 - alpha / 2)
