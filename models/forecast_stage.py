"""The forecasts stage: a model per sales series, forecasts and backtests, published.

Input, and where the series are fitted
--------------------------------------
The sales stage's series (:mod:`models.sales_stage`) as a long frame with one row per
series and period (``series``, ``period``, ``revenue``, ``quantity``, ``orders``,
``customers``), every series on the same regular index, fitted in the driver's process
pool (inline runs; :func:`read_sales_series` reads a published output into one); or the
path of a published sales output, whose ``part-*`` files are the input of the MapReduce
job :mod:`mr_jobs.forecast_series` (the reducer key is the series: a reduce task fits the
series it gets) on any runner. Both run the same per-series code
(:mod:`models.forecast_records`), so they publish the same rows; the driver streams the
job's records (one per series) into the files, a series at a time, and holds only the
names, models and backtest metrics of the series for the manifest. One measure
(``value``, default ``revenue``) is forecast per series by the code of
:func:`models.forecast.forecast_series`, whose module docstring documents the model
choice, the fallbacks and the backtest.

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

Coherent totals
---------------
With ``reconcile="top-down"`` (the default) and an additive ``value`` (revenue,
quantity), every series but ``total`` is rescaled per period so that the items and
``__other__`` add up to ``total``'s forecast, and their backtests are rescaled and scored
the same way (:mod:`models.forecast_reconcile`); the published rows are the reconciled
ones. The plan takes one extra pass over the series records (the job's output is read
twice; the driver keeps a few numbers per period). ``details.reconciliation`` says what
was done or why not.

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
    ``runner`` (None for the process pool, else the job's runner) and ``details``:
    ``series``, ``series_failed`` and ``series_fallback`` (names, sorted), ``models``
    (series -> model, sorted by series), ``models_won`` (series per model family),
    ``horizon``, ``periods_fitted``, ``first_period``, ``last_period``,
    ``dropped_periods``, ``fit_seconds`` and ``backtest_summary`` (the ``total`` series'
    metrics, the medians over all series, and how many series beat the seasonal naive)
    and ``reconciliation`` (``method`` or None, ``reason``, ``series`` rescaled and the
    per-period ratios of the forecast and the backtest).

Every argument (including the options passed through to
:func:`~models.forecast.forecast_series`) is checked, and so is the output path, before
any series is fitted. A series that cannot be forecast is listed in ``series_failed``
and has no forecast rows; the others are published. An input without rows publishes an
empty result (empty files, zero lines) with its manifest.
"""

import csv
import dataclasses
import datetime
import json
import posixpath
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from typing import NamedTuple

import numpy as np
import pandas as pd

from hdfs_io import (
    Publication,
    get_filesystem,
    is_published,
    read_manifest,
    read_parts,
)
from models import forecast_reconcile as reconciliation
from models.checks import check_int
from models.forecast import _STEP_DAYS, DEFAULT_BACKTEST, forecast_series
from models.forecast_records import (
    BACKTEST_COLUMNS,
    FORECAST_COLUMNS,
    forecast_pool,
)
from models.inputs import expand_parts
from models.job_runner import RUNNERS, run_job
from models.manifest import Stopwatch, build_manifest
from models.outputs import ROWS_PER_PART, csv_text, json_plain
from models.progress import summarize_manifest
from models.stages.forecasts import DEFAULT_PROCESSES, RECONCILE
from mr_jobs.forecast_series import MRForecastSeries

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


def _check_arguments(series, period, horizon, value, processes, runner):
    if isinstance(series, str):
        if period is not None and period not in _PERIODS:
            raise ValueError(f"period={period!r} should be one of {_PERIODS}")
    elif isinstance(series, pd.DataFrame):
        if runner not in (None, "inline"):
            raise ValueError(
                f"runner={runner!r} runs the forecasts job on a published sales output: give "
                "its path instead of a frame (a frame is fitted in the driver's process pool)"
            )
        if period not in _PERIODS:
            raise ValueError(f"period={period!r} should be one of {_PERIODS}")
        missing = [c for c in ("series", "period", value) if c not in series.columns]
        if missing:
            raise ValueError(
                f"the series have no column(s) {missing} (value={value!r}); "
                f"they have {list(series.columns)}"
            )
    else:
        raise ValueError(
            f"series is a {type(series).__name__}: it should be a DataFrame or the path of "
            "a published sales output"
        )
    check_int("horizon", horizon, 1)
    if value not in VALUES:
        raise ValueError(f"value={value!r} should be one of {VALUES}")
    check_int("processes", processes, 1)
    if runner is not None and runner not in RUNNERS:
        raise ValueError(f"runner={runner!r} should be one of {RUNNERS}")


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


def _sales_manifest(path):
    """The manifest of a published sales output (checked as :func:`read_sales_series`
    checks it) and its part files."""
    fs, p = get_filesystem(path)
    if not is_published(fs, p):
        raise ValueError(f"sales={fs.uri(p)!r} is not a published result (no _SUCCESS)")
    manifest = read_manifest(fs, p)
    details = manifest.get("details") or {}
    if manifest.get("stage") != "sales" or details.get("period") not in _PERIODS:
        raise ValueError(
            f"sales={fs.uri(p)!r} holds a {manifest.get('stage')!r} result with period "
            f"{details.get('period')!r}, not sales series of one of {_PERIODS}"
        )
    return manifest, expand_parts([path])


def run_forecast_stage(
    series,
    output_path,
    *,
    period=None,
    horizon=None,
    value="revenue",
    backtest_periods=None,
    processes=DEFAULT_PROCESSES,
    data_span=None,
    source=None,
    overwrite=False,
    reporter=None,
    method="select",
    reconcile="top-down",
    runner=None,
    conf_paths=None,
    **forecast_options,
):
    """Forecast every sales series and publish the forecasts, backtests and fits.

    Parameters
    ----------
    series : pandas.DataFrame or str
        The sales stage's series, long format (see the module docstring), fitted in the
        driver's process pool; or the path (local or ``hdfs://``) of a published sales
        output, fitted by the MapReduce job :mod:`mr_jobs.forecast_series` with
        ``runner`` (one reducer call per series; the driver streams the tasks' records
        into the published files).
    output_path : str
        Where to publish (refused if it exists and not ``overwrite``).
    period : {"D", "W"}, optional
        The series' period; required with a frame, read from a sales output's manifest
        (and checked against it when given).
    horizon : int, optional
        Periods to forecast; default 28 days or 8 weeks.
    value : {"revenue", "quantity", "orders", "customers"}
        The measure forecast.
    backtest_periods : int, optional
        Periods held out for the backtest (0: none); default 28 days or 8 weeks.
    processes : int
        Worker processes fitting the series of a frame (1: in this process).
    data_span : (str, str), optional
        The log's first and last days, to leave out partial edge weeks.
    source : str, optional
        Where the series came from, recorded as the manifest's input (default: the path).
    overwrite : bool
    reporter : models.progress.Reporter, optional
    method : {"arima", "select"}
        The model choice of :func:`models.forecast.forecast_series`: the ARIMA grid by
        AIC, or ARIMA, ETS, Theta or the seasonal naive by rolling-origin backtest.
    reconcile : {"top-down", "none"}
        ``top-down``: the other series' forecasts and backtests rescaled to add up to
        ``total``'s (:mod:`models.forecast_reconcile`; only for an additive ``value``, with
        ``total`` and ``__other__``: the manifest's ``details.reconciliation`` says what was
        done, or why not); ``none``: each series as forecast.
    runner : str, optional
        The mrjob runner of the job (a path input; default ``inline``).
    conf_paths : list of str, optional
        mrjob config files (see :func:`models.job_runner.run_job`).
    **forecast_options
        Passed to :func:`models.forecast.forecast_series` (``alpha``, ``transform``,
        ``seasonal_lag``, ``maxiter``).

    Returns
    -------
    (models.forecast.ForecastResult or None, dict)
        The result frames (a frame input; empty frames when there was no series; None
        for a path input, whose rows stay in the published files) and the manifest.

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
    _check_arguments(series, period, horizon or 1, value, processes, runner)
    if reconcile not in RECONCILE:
        raise ValueError(f"reconcile must be one of {', '.join(RECONCILE)}, not {reconcile!r}")
    sales = None
    if isinstance(series, str):
        sales = _sales_manifest(series)
        found = sales[0]["details"]["period"]
        if period is not None and period != found:
            raise ValueError(f"period={period!r} but the sales output's period is {found!r}")
        period, source = found, source or series
    if horizon is None:
        horizon = DEFAULT_HORIZON[period]
    check_int("horizon", horizon, 1)
    _check_span(data_span)
    empty = _resolved_options(period, horizon, backtest_periods, processes, forecast_options)
    config = {k: v for k, v in empty.parameters.items() if k not in ("value", "processes")}
    options = {k: v for k, v in empty.parameters.items() if k != "value"}
    say = reporter.progress("forecasts") if reporter else (lambda message: None)
    fs, out = get_filesystem(output_path)
    watch = Stopwatch()
    with Publication(fs, out, overwrite=overwrite) as publication:
        started = time.perf_counter()
        if sales is None:
            fitted = _fit_in_pool(series, value, config, int(processes), data_span, say)
        else:
            fitted = _fit_in_job(sales, value, config, data_span, runner, conf_paths, say)
        result, lines, span = fitted.result, fitted.lines, fitted.span
        records, coherence = _reconciled(fitted.records, value, reconcile, say)
        with records() as rows:
            written = _publish(publication, rows)
        fit_seconds = round(time.perf_counter() - started, 3)
        with records() as rows:
            details = _details(rows, span, fit_seconds, value, horizon)
        details["reconciliation"] = coherence
        fitted.close()
        if result is None and sales is None:
            result = dataclasses.replace(empty, parameters={**empty.parameters, "value": value})
        elif result is not None:
            result = _reconciled_result(result, coherence, records)
        manifest = build_manifest(
            "forecasts",
            inputs=[{"path": source, "bytes": None}] if source else [],
            parameters=json_plain(
                {
                    **options,
                    "value": value,
                    "reconcile": reconcile,
                    "data_span": list(data_span) if data_span else None,
                    "overwrite": overwrite,
                }
            ),
            runner=None if sales is None else (runner or "inline"),
            lines=lines,
            rows_written=written,
            stopwatch=watch,
            outputs=[FORECASTS_CSV, BACKTEST_CSV, BACKTEST_JSONL, FITS_JSONL],
            details=details,
        )
        publication.commit(manifest)
    _say_outcome(say, manifest)
    summarize_manifest(reporter, "forecasts", manifest)
    return result, manifest


def _reconciled(records, value, reconcile, say):
    """``(records, plan)``: the records opener rescaling each record by the plan of
    :mod:`models.forecast_reconcile` (one pass over the records for it), and the plan."""
    if reconcile == "none":
        return records, reconciliation.skipped("reconcile='none'")
    with records() as rows:
        plan = reconciliation.plan(rows, value)
    if plan["method"] is None:
        say(f"forecasts not reconciled: {plan['reason']}")
        return records, plan
    say(f"{plan['series']} series rescaled to add up to the total ({plan['method']})")

    @contextmanager
    def opened():
        with records() as rows:
            yield (reconciliation.reconciled(row, plan) for row in rows)

    return opened, plan


def _reconciled_result(result, plan, records):
    """The pool's frames with the forecasts and backtests of the rescaled ``records``."""
    if plan["method"] is None:
        return result
    ratio = {r["period"]: r["ratio"] for r in plan["forecast"]}
    fc = result.forecasts.copy()
    rows = (fc["series"] != reconciliation.TOTAL).to_numpy()
    factor = fc.loc[rows, "period"].dt.strftime("%Y-%m-%d").map(ratio).to_numpy(dtype=float)
    for column in ("forecast", "lower", "upper"):
        fc.loc[rows, column] = fc.loc[rows, column].to_numpy(dtype=float) * factor
    bt = result.backtest.copy()
    with records() as found:
        fixed = {r["series"]: r["backtest"] for r in found if r["backtest"] is not None}
    for i, name in enumerate(bt["series"]):
        for column in _RESCORED:
            bt.iloc[i, bt.columns.get_loc(column)] = fixed[name][column]
    return dataclasses.replace(result, forecasts=fc, backtest=bt)


#: The backtest's columns a rescaling changes.
_RESCORED = ("mae", "mape", "mase", "relative_mae", "coverage")


def _say_outcome(say, manifest):
    failed = manifest["details"]["series_failed"]
    if failed:
        shown = ", ".join(failed[:20]) + (
            f" and {len(failed) - 20} more" if len(failed) > 20 else ""
        )
        say(f"{len(failed)} series could not be forecast: {shown}")
    total = manifest["details"]["backtest_summary"]["total"]
    if total and total.get("mase") is not None:
        say(f"total: backtest MASE {total['mase']:.3f}, relative MAE {_fmt(total['relative_mae'])}")


class _Fitted(NamedTuple):
    """What a fitting path hands to the publishing: ``records()`` opens a fresh iterator
    of series records (a context manager), ``close()`` ends the job's run."""

    result: object
    records: object
    lines: dict
    span: dict
    close: object


def _list_records(records):
    @contextmanager
    def opened():
        yield iter(records)

    return opened


def _fit_in_pool(series, value, config, processes, data_span, say):
    """Fit a frame's series in the driver's process pool (inline runs)."""
    period = config["period"]
    periods = sorted({p.date() for p in pd.to_datetime(series["period"])})
    dropped, note = partial_edge_periods(periods, period, data_span)
    frame, by_reason = _fitted_frame(series, value, dropped, note, say)
    gone = {d["period"] for d in dropped}
    kept = [p for p in periods if p.isoformat() not in gone]
    span = _span(len(kept), kept[0] if kept else None, kept[-1] if kept else None, dropped, note)
    names = frame["series"].nunique()
    result, records = None, []
    if names:
        say(f"fitting {names} series x {len(kept)} periods in {processes} process(es)")
        result, records = forecast_pool(frame, value, config, processes, say)
    else:
        say("no series to forecast: publishing an empty result")
    rejected = sum(by_reason.values())
    lines = {
        "read": len(series),
        "accepted": len(series) - rejected,
        "rejected": rejected,
        "rejected_by_reason": by_reason,
    }
    return _Fitted(result, _list_records(records), lines, span, lambda: None)


def _fit_in_job(sales, value, config, data_span, runner, conf_paths, say):
    """Fit a sales output's series with the MapReduce job, one reducer call per series."""
    manifest, parts = sales
    details = manifest["details"]
    period = config["period"]
    step = datetime.timedelta(days=_STEP_DAYS[period])
    first = _day("first_period", details["first_period"]) if details.get("first_period") else None
    last = _day("last_period", details["last_period"]) if details.get("last_period") else None
    n = int(details.get("periods") or 0)
    ends = [] if first is None else ([first, last] if n > 1 else [first])
    dropped, note = partial_edge_periods(ends, period, data_span)
    if note:
        say(note)
    for d in dropped:
        say(f"left out {d['period']}: {d['reason']}, {d['days_covered']} day(s) of the week")
    reasons = {d["period"]: d["reason"] for d in dropped}
    if first is not None and first.isoformat() in reasons:
        first += step
    if last is not None and last.isoformat() in reasons:
        last -= step
    span = _span(n - len(dropped), first if n > len(dropped) else None, last, dropped, note)
    if n <= len(dropped):
        span["last_period"] = None
    args = ["--value", value, "--drop-periods", json.dumps(reasons), "--config", json.dumps(config)]
    say(
        f"fitting {details.get('series', '?')} series x {span['periods_fitted']} periods with "
        f"the {runner or 'inline'} runner's tasks"
    )
    stack = ExitStack()
    if not parts:
        return _Fitted(None, _list_records([]), _no_lines(), span, stack.close)
    run = stack.enter_context(
        run_job(MRForecastSeries, parts, args, runner=runner or "inline", conf_paths=conf_paths)
    )

    @contextmanager
    def records():
        rows = run.rows()
        try:
            yield rows
        finally:
            rows.close()

    return _Fitted(None, records, run.lines, span, stack.close)


def _no_lines():
    return {"read": 0, "accepted": 0, "rejected": 0, "rejected_by_reason": {}}


def _span(n, first, last, dropped, note):
    return {
        "periods_fitted": n,
        "first_period": first.isoformat() if first else None,
        "last_period": last.isoformat() if last else None,
        "dropped_periods": dropped,
        "partial_periods_note": note,
    }


def _publish(publication, records):
    """Write the part files and side files from one pass over the series records.

    Each file's lines go to a local temporary file as the records come (constant memory:
    a series at a time) and are streamed into the staging directory at the end. Returns
    the forecast rows written.
    """
    fs = publication.fs
    side = {
        name: _LineFile(
            lambda lines, name=name: fs.write_lines(
                posixpath.join(publication.staging_path, name), lines
            )
        )
        for name in _SIDE_FILES
    }
    parts = _PartWriter(publication)
    side[FORECASTS_CSV].header(FORECAST_COLUMNS)
    side[BACKTEST_CSV].header(BACKTEST_COLUMNS)
    for record in records:
        for row in record["forecasts"]:
            parts.add(row)
            side[FORECASTS_CSV].csv(FORECAST_COLUMNS, row)
        if record["backtest"] is not None:
            side[BACKTEST_JSONL].json(record["backtest"], allow_nan=False)
            side[BACKTEST_CSV].csv(BACKTEST_COLUMNS, record["backtest"])
        for fit in record["fits"]:
            side[FITS_JSONL].json(fit, allow_nan=False)
    for writer in side.values():
        writer.close()
    return parts.close()


_SIDE_FILES = (FORECASTS_CSV, BACKTEST_CSV, BACKTEST_JSONL, FITS_JSONL)


class _LineFile:
    """Lines appended to a local temporary file, handed to ``write(lines)`` on close."""

    def __init__(self, write):
        self._write = write
        self._tmp = tempfile.TemporaryFile("w+", encoding="utf-8", newline="\n")
        self._csv = csv.writer(self._tmp, lineterminator="\n")
        self.lines = 0

    def header(self, columns):
        self._csv.writerow(columns)

    def csv(self, columns, row):
        self._csv.writerow([csv_text(row.get(c)) for c in columns])
        self.lines += 1

    def json(self, row, **kwargs):
        self._tmp.write(json.dumps(row, ensure_ascii=False, **kwargs) + "\n")
        self.lines += 1

    def close(self):
        self._tmp.seek(0)
        self._write(iter(self._tmp))  # lines with their newline, as write_lines allows
        self._tmp.close()

    def discard(self):
        self._tmp.close()


class _PartWriter:
    """Forecast rows into ``part-00000``, ``part-00001``, ... (``ROWS_PER_PART`` each;
    one empty part when there is none)."""

    def __init__(self, publication):
        self._publication = publication
        self._index, self._written = 0, 0
        self._file = self._open()

    def _open(self):
        return _LineFile(lambda lines, i=self._index: self._publication.write_part(i, lines))

    def add(self, row):
        self._file.json(row)
        if self._file.lines >= ROWS_PER_PART:
            self._roll()

    def _roll(self):
        self._written += self._file.lines
        self._file.close()
        self._index += 1
        self._file = self._open()

    def close(self):
        if self._file.lines or not self._written:
            self._written += self._file.lines
            self._file.close()
        else:
            self._file.discard()
        return self._written


def _details(records, span, fit_seconds, value, horizon):
    """The manifest's ``details`` (see the module docstring), from one pass over the
    series records: series names, models and backtest metrics (a few numbers a series)."""
    failed, fallback, models, total = [], [], {}, None
    mase, rel, backtested = [], [], 0
    for record in records:
        name, final = record["series"], record["fits"][0]
        if final["status"] == "failed":
            failed.append(name)
        elif final["status"] == "fallback":
            fallback.append(name)
        models[name] = final["model"]
        bt = record["backtest"]
        if bt is None:
            continue
        backtested += 1
        if name == "total":
            total = {k: bt[k] for k in ("mae", "mape", "mase", "relative_mae", "coverage", "model")}
        if bt["mase"] is not None:
            mase.append(bt["mase"])
        if bt["relative_mae"] is not None:
            rel.append(bt["relative_mae"])
    summary = {
        "total": total,
        "median_mase": float(np.median(mase)) if mase else None,
        "median_relative_mae": float(np.median(rel)) if rel else None,
        "beat_seasonal_naive": sum(1 for r in rel if r < 1),
        "series_backtested": backtested,
    }
    return json_plain(
        {
            "series": len(models),
            "series_failed": sorted(failed),
            "series_fallback": sorted(fallback),
            "models": dict(sorted(models.items())),
            "models_won": _models_won(models.values()),
            "value": value,
            "horizon": int(horizon),
            **span,
            "fit_seconds": fit_seconds,
            "backtest_summary": summary,
        }
    )


def _models_won(models):
    """Series per model family of the final fits (``ARIMA``, ``ETS(A,Ad,N) on log1p``, ...:
    the name without its orders' regressors and lags), most first."""
    import re

    families = Counter()
    for model in models:
        if model is None:
            continue
        family = re.sub(r"\(\d+,\d+,\d+\).*", "", str(model))  # ARIMA(1,1,1) trend=t + ...
        family = re.sub(r" \(lag \d+\)", "", family)  # seasonal naive (lag 52)
        family = re.sub(r" \(deseasonalised, lag \d+\)", "", family)
        families[family.strip()] += 1
    return dict(sorted(families.items(), key=lambda kv: (-kv[1], kv[0])))


def _fitted_frame(series, value, dropped, note, say):
    """The rows to fit: ``series``' measure without the partial edge periods.

    Returns the frame and the rows left out by reason.
    """
    frame = series[["series", "period", value]].copy()
    frame["period"] = pd.to_datetime(frame["period"])
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
    return frame, by_reason


def _fmt(x):
    return "n/a" if x is None else f"{x:.3f}"
