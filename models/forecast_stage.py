"""The forecasts stage: one ARIMA per sales series, forecasts and backtests, published.

Input
-----
The sales stage's series (:mod:`models.sales_stage`): a long frame with one row per
series and period (``series``, ``period``, ``revenue``, ``quantity``, ``orders``,
``customers``), every series on the same regular index; or its published output, read by
:func:`read_sales_series`. One measure (``value``, default ``revenue``) is forecast per
series by :func:`models.forecast.forecast_series`, whose module docstring documents the
model choice, the fallbacks and the backtest.

Partial edge weeks
------------------
A week the log covers for only some of its days looks like a collapse in sales and would
pull the trend and the backtest down. Given ``data_span = (first_day, last_day)``, the
first and last dates of the log (the pipeline passes the RFM rows' first and last
purchase), a weekly series' first period is dropped when ``first_day`` lies in it but is
not its Monday, and the last period when ``last_day`` lies in it but is not its Sunday.
When the span does not fall in the first or last period (for example the sales cover lines
after an ``as_of`` the span stops at), nothing is dropped and ``partial_periods_note`` in
the manifest says why. Daily series are never trimmed.

Accounting
----------
The manifest's ``lines`` count the input rows (series x periods): ``read`` = ``accepted``
(fitted) + ``rejected``, by reason ``partial_first_week`` and ``partial_last_week``.

Published layout (``<output>/``)
--------------------------------
``part-*`` and ``forecasts.csv``
    One row per series and future period: ``series``, ``period`` (``YYYY-MM-DD``, the
    period's first day), ``step`` (1..horizon), ``forecast``, ``lower``, ``upper`` (the
    ``1 - alpha`` prediction interval), ``model``.
``backtest.jsonl`` and ``backtest.csv``
    One row per series: ``series``, ``n``, ``model``, ``seasonal_lag``, ``mae``, ``mape``,
    ``mape_ignored``, ``mase``, ``scale``, ``naive_mae``, ``relative_mae``, ``coverage``,
    ``note`` (undefined values are ``null`` in JSON and empty in CSV).
``fits.jsonl``
    One row per series and fit (``stage`` ``final`` or ``backtest``): order, trend,
    regressors, transform, AIC, convergence, candidates, fallback, warnings, errors,
    seconds.
``_manifest.json``, ``_SUCCESS``
    ``details``: ``series``, ``series_failed``, ``series_fallback``, ``models``,
    ``horizon``, ``periods_fitted``, ``first_period``, ``last_period``,
    ``dropped_periods``, ``fit_seconds`` and ``backtest_summary`` (the ``total`` series'
    metrics, the medians over all series, and how many series beat the seasonal naive).

Every argument (including the options passed through to
:func:`~models.forecast.forecast_series`) is checked, and so is the output path, before
any series is fitted. A series that cannot be forecast is listed in ``series_failed``
and has no forecast rows; the others are published. An input without rows publishes an
empty result (empty files, zero lines) with its manifest.
"""

import dataclasses
import datetime
import json
import time
from collections import Counter

import numpy as np
import pandas as pd

from hdfs_io import (
    Publication,
    get_filesystem,
    is_published,
    read_manifest,
    read_parts,
)
from models.checks import check_int
from models.forecast import DEFAULT_BACKTEST, forecast_series
from models.manifest import Stopwatch, build_manifest
from models.outputs import json_plain, jsonl_text, write_json_parts
from models.progress import summarize_manifest
from models.stages.forecasts import DEFAULT_PROCESSES

__all__ = [
    "DEFAULT_HORIZON",
    "FORECASTS_CSV",
    "BACKTEST_CSV",
    "BACKTEST_JSONL",
    "FITS_JSONL",
    "VALUES",
    "read_sales_series",
    "partial_edge_periods",
    "run_forecast_stage",
]

DEFAULT_HORIZON = dict(DEFAULT_BACKTEST)
FORECASTS_CSV = "forecasts.csv"
BACKTEST_CSV = "backtest.csv"
BACKTEST_JSONL = "backtest.jsonl"
FITS_JSONL = "fits.jsonl"
VALUES = ("revenue", "quantity", "orders", "customers")
_PERIODS = ("D", "W")
_SALES_COLUMNS = ("series", "period", "revenue", "quantity", "orders", "customers")


def read_sales_series(path):
    """Read a published sales stage output.

    Parameters
    ----------
    path : str
        The sales stage's output directory, local or ``hdfs://``.

    Returns
    -------
    (pandas.DataFrame, str)
        The series in long format (``period`` as ``datetime64``) and the period
        (``"D"`` or ``"W"``) from the manifest.

    Raises
    ------
    ValueError
        When ``path`` is not a published sales output.
    """
    fs, p = get_filesystem(path)
    if not is_published(fs, p):
        raise ValueError(f"sales={fs.uri(p)!r} is not a published result (no _SUCCESS)")
    manifest = read_manifest(fs, p)
    if manifest.get("stage") != "sales":
        raise ValueError(
            f"sales={fs.uri(p)!r} holds a {manifest.get('stage')!r} result, not sales series"
        )
    period = (manifest.get("details") or {}).get("period")
    if period not in _PERIODS:
        raise ValueError(
            f"sales={fs.uri(p)!r}: its manifest's details.period={period!r} should be one "
            f"of {_PERIODS}"
        )
    rows = [json.loads(line) for line in read_parts(fs, p) if line]
    frame = pd.DataFrame(rows, columns=list(_SALES_COLUMNS))
    frame["period"] = pd.to_datetime(frame["period"], format="%Y-%m-%d")
    frame = frame.astype({"revenue": "float64", "orders": "int64", "customers": "int64"})
    return frame, period


def _day(name, value):
    try:
        return datetime.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValueError(f"{name}={value!r} should be a date YYYY-MM-DD") from None


def partial_edge_periods(periods, period, data_span):
    """The first and last weekly periods that the log covers only in part.

    Parameters
    ----------
    periods : list of datetime.date
        The series' periods (Mondays for weeks), ascending.
    period : {"D", "W"}
    data_span : (str, str) or None
        The log's first and last days.

    Returns
    -------
    (list of dict, str or None)
        ``{"period", "reason", "days_covered"}`` per dropped period, and a note when the
        span could not be used.
    """
    if period != "W" or not periods or data_span is None:
        return [], None
    first_day, last_day = _day("first_day", data_span[0]), _day("last_day", data_span[1])
    dropped, notes = [], []
    week = datetime.timedelta(days=7)
    first, last = periods[0], periods[-1]
    if first <= first_day < first + week:
        if first_day != first:
            covered = (first + week - first_day).days
            dropped.append(
                {
                    "period": first.isoformat(),
                    "reason": "partial_first_week",
                    "days_covered": covered,
                }
            )
    else:
        notes.append(f"first_day {first_day} is not in the first week {first}")
    if last <= last_day < last + week:
        if last_day != last + datetime.timedelta(days=6) and (len(periods) > 1 or not dropped):
            covered = (last_day - last).days + 1
            dropped.append(
                {"period": last.isoformat(), "reason": "partial_last_week", "days_covered": covered}
            )
    else:
        notes.append(f"last_day {last_day} is not in the last week {last}")
    note = None
    if notes:
        note = "; ".join(notes) + ": those edges are kept as they are"
    return dropped, note


def _check_arguments(series, period, horizon, value, processes):
    if not isinstance(series, pd.DataFrame):
        raise ValueError(f"series is a {type(series).__name__}: it should be a DataFrame")
    if period not in _PERIODS:
        raise ValueError(f"period={period!r} should be one of {_PERIODS}")
    check_int("horizon", horizon, 1)
    if value not in VALUES:
        raise ValueError(f"value={value!r} should be one of {VALUES}")
    check_int("processes", processes, 1)
    missing = [c for c in ("series", "period", value) if c not in series.columns]
    if missing:
        raise ValueError(
            f"the series have no column(s) {missing} (value={value!r}); "
            f"they have {list(series.columns)}"
        )


def _check_span(data_span):
    if data_span is None:
        return
    if isinstance(data_span, str) or len(data_span) != 2:
        raise ValueError(f"data_span={data_span!r} should be (first_day, last_day)")
    first, last = _day("first_day", data_span[0]), _day("last_day", data_span[1])
    if first > last:
        raise ValueError(f"data_span={tuple(data_span)!r}: first_day is after last_day")


def _resolved_options(period, horizon, backtest_periods, processes, forecast_options):
    """Every option of :func:`forecast_series`, checked and resolved, without fitting.

    A call without any series runs its argument checks (so the messages are its own) and
    returns the parameters it would use, and empty frames with the published columns.
    """
    return forecast_series(
        {},
        period=period,
        horizon=int(horizon),
        backtest_periods=backtest_periods,
        processes=int(processes),
        **forecast_options,
    )


def _records(frame):
    return [json_plain(r) for r in frame.to_dict("records")]


def _summary(backtest):
    """The ``total`` series' metrics, medians over the series, series beating the naive."""
    summary = {"total": None}
    if backtest.empty:
        summary.update(
            median_mase=None, median_relative_mae=None, beat_seasonal_naive=0, series_backtested=0
        )
        return summary
    total = backtest[backtest["series"] == "total"]
    if not total.empty:
        row = total.iloc[0]
        summary["total"] = json_plain(
            {k: row[k] for k in ("mae", "mape", "mase", "relative_mae", "coverage", "model")}
        )
    mase = backtest["mase"][np.isfinite(backtest["mase"])]
    rel = backtest["relative_mae"][np.isfinite(backtest["relative_mae"])]
    summary["median_mase"] = json_plain(float(mase.median())) if len(mase) else None
    summary["median_relative_mae"] = json_plain(float(rel.median())) if len(rel) else None
    summary["beat_seasonal_naive"] = int((rel < 1).sum())
    summary["series_backtested"] = int(len(backtest))
    return summary


def run_forecast_stage(
    series,
    output_path,
    *,
    period,
    horizon=None,
    value="revenue",
    backtest_periods=None,
    processes=DEFAULT_PROCESSES,
    data_span=None,
    source=None,
    overwrite=False,
    reporter=None,
    method="select",
    **forecast_options,
):
    """Forecast every sales series and publish the forecasts, backtests and fits.

    Parameters
    ----------
    series : pandas.DataFrame
        The sales stage's series, long format (see the module docstring).
    output_path : str
        Where to publish (refused if it exists and not ``overwrite``).
    period : {"D", "W"}
        The series' period.
    horizon : int, optional
        Periods to forecast; default 28 days or 8 weeks.
    value : {"revenue", "quantity", "orders", "customers"}
        The measure forecast.
    backtest_periods : int, optional
        Periods held out for the backtest (0: none); default 28 days or 8 weeks.
    processes : int
        Worker processes fitting the series (1: in this process).
    data_span : (str, str), optional
        The log's first and last days, to leave out partial edge weeks.
    source : str, optional
        Where the series came from, recorded as the manifest's input.
    overwrite : bool
    reporter : models.progress.Reporter, optional
    method : {"arima", "select"}
        The model choice of :func:`models.forecast.forecast_series`: the ARIMA grid by
        AIC, or ARIMA, ETS, Theta or the seasonal naive by rolling-origin backtest.
    **forecast_options
        Passed to :func:`models.forecast.forecast_series` (``alpha``, ``transform``,
        ``seasonal_lag``, ``maxiter``).

    Returns
    -------
    (models.forecast.ForecastResult, dict)
        The result (with empty frames when there was no series) and the manifest.

    Raises
    ------
    ValueError
        A bad argument (or forecast option), before anything is written or fitted.
    TypeError
        An unknown keyword in ``forecast_options``, before anything is written.
    hdfs_io.PathExists, hdfs_io.UnsafePathError
        When ``output_path`` may not be published to, before anything is fitted.
    """
    forecast_options["method"] = method
    if horizon is None and period in DEFAULT_HORIZON:
        horizon = DEFAULT_HORIZON[period]
    _check_arguments(series, period, horizon, value, processes)
    _check_span(data_span)
    empty = _resolved_options(period, horizon, backtest_periods, processes, forecast_options)
    options = {k: v for k, v in empty.parameters.items() if k != "value"}
    say = reporter.progress("forecasts") if reporter else (lambda message: None)
    fs, out = get_filesystem(output_path)
    watch = Stopwatch()
    with Publication(fs, out, overwrite=overwrite) as publication:
        frame, dropped, note, by_reason = _fitted_frame(series, value, period, data_span, say)
        read = len(series)
        names = list(dict.fromkeys(frame["series"]))
        fitted_periods = sorted({p.date() for p in frame["period"]})
        started = time.perf_counter()
        if names:
            say(
                f"fitting {len(names)} series x {len(fitted_periods)} periods "
                f"in {processes} process(es)"
            )
            result = forecast_series(
                frame,
                period=period,
                horizon=int(horizon),
                backtest_periods=backtest_periods,
                value=value,
                processes=int(processes),
                progress=say,
                **forecast_options,
            )
        else:
            say("no series to forecast: publishing an empty result")
            result = dataclasses.replace(empty, parameters={**empty.parameters, "value": value})
        fit_seconds = round(time.perf_counter() - started, 3)
        forecasts, backtest, fits = result.forecasts, result.backtest, result.fits
        written = write_json_parts(publication, _records(forecasts))
        publication.write_file(FORECASTS_CSV, _csv(forecasts))
        publication.write_file(BACKTEST_JSONL, jsonl_text(_records(backtest)))
        publication.write_file(BACKTEST_CSV, _csv(backtest))
        publication.write_file(FITS_JSONL, jsonl_text(_records(fits)))
        rejected = sum(by_reason.values())
        lines = {
            "read": read,
            "accepted": read - rejected,
            "rejected": rejected,
            "rejected_by_reason": by_reason,
        }
        manifest = build_manifest(
            "forecasts",
            inputs=[{"path": source, "bytes": None}] if source else [],
            parameters=json_plain(
                {
                    **options,
                    "value": value,
                    "data_span": list(data_span) if data_span else None,
                    "overwrite": overwrite,
                }
            ),
            runner=None,
            lines=lines,
            rows_written=written,
            stopwatch=watch,
            outputs=[FORECASTS_CSV, BACKTEST_CSV, BACKTEST_JSONL, FITS_JSONL],
            details=_details(
                result, names, fitted_periods, dropped, note, fit_seconds, value, horizon
            ),
        )
        publication.commit(manifest)
    failed = manifest["details"]["series_failed"]
    if failed:
        say(f"{len(failed)} series could not be forecast: {', '.join(failed)}")
    total = manifest["details"]["backtest_summary"]["total"]
    if total and total.get("mase") is not None:
        say(f"total: backtest MASE {total['mase']:.3f}, relative MAE {_fmt(total['relative_mae'])}")
    summarize_manifest(reporter, "forecasts", manifest)
    return result, manifest


def _details(result, names, fitted_periods, dropped, note, fit_seconds, value, horizon):
    """The manifest's ``details`` (see the module docstring)."""
    final = result.fits[result.fits["stage"] == "final"]
    return json_plain(
        {
            "series": len(names),
            "series_failed": result.failed(),
            "series_fallback": [str(s) for s in final.loc[final["status"] == "fallback", "series"]],
            "models": {str(r["series"]): r["model"] for _, r in final.iterrows()},
            "models_won": _models_won(final),
            "value": value,
            "horizon": int(horizon),
            "periods_fitted": len(fitted_periods),
            "first_period": fitted_periods[0].isoformat() if fitted_periods else None,
            "last_period": fitted_periods[-1].isoformat() if fitted_periods else None,
            "dropped_periods": dropped,
            "partial_periods_note": note,
            "fit_seconds": fit_seconds,
            "backtest_summary": _summary(result.backtest),
        }
    )


def _models_won(final):
    """Series per model family of the final fits (``ARIMA``, ``ETS(A,Ad,N) on log1p``, ...:
    the name without its orders' regressors and lags), most first."""
    import re

    families = Counter()
    for model in final["model"].dropna():
        family = re.sub(r"\(\d+,\d+,\d+\).*", "", str(model))  # ARIMA(1,1,1) trend=t + ...
        family = re.sub(r" \(lag \d+\)", "", family)  # seasonal naive (lag 52)
        family = re.sub(r" \(deseasonalised, lag \d+\)", "", family)
        families[family.strip()] += 1
    return dict(families.most_common())


def _fitted_frame(series, value, period, data_span, say):
    """The rows to fit: ``series``' measure without the partial edge periods.

    Returns the frame, the dropped periods (see :func:`partial_edge_periods`), its note and
    the rows left out by reason.
    """
    frame = series[["series", "period", value]].copy()
    frame["period"] = pd.to_datetime(frame["period"])
    periods = sorted({p.date() for p in frame["period"]})
    dropped, note = partial_edge_periods(periods, period, data_span)
    if note:
        say(note)
    by_reason = {}
    for d in dropped:
        gone = frame["period"] == pd.Timestamp(d["period"])
        by_reason[d["reason"]] = by_reason.get(d["reason"], 0) + int(gone.sum())
        frame = frame[~gone]
        say(
            f"left out {d['period']}: {d['reason']}, "
            f"{d['days_covered']} day(s) of the week in the log"
        )
    return frame, dropped, note, by_reason


def _fmt(x):
    return "n/a" if x is None else f"{x:.3f}"


def _csv(frame):
    out = frame.copy()
    if "period" in out.columns and len(out):
        out["period"] = pd.to_datetime(out["period"]).dt.strftime("%Y-%m-%d")
    return out.to_csv(index=False, lineterminator="\n")
