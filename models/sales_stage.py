"""The sales stage: regular sales series per period, in total and for the top-N items.

Runs :class:`mr_jobs.sales.MRSalesSeries` twice over the order lines when the input has
an item column:

1. ``--rank-items``: total revenue per item over the whole span. The driver keeps the
   ``top_n`` items with the most revenue (ties by item id, ascending).
2. the series, with ``--top-items`` naming those items: ``total``, one series per top
   item and ``__other__`` for every other item. ``__other__``'s ``orders`` and
   ``customers`` are distinct counts computed by the job, so they are exact (a sum of
   per-item distinct counts would count a customer of two such items twice).

Without an item column only the first pass is skipped and the only series is ``total``.
``__other__`` appears only when some item is outside the top-N. Lines without an item id
count in ``total`` only (the manifest's ``details.lines_without_item``), so ``total`` can
exceed the sum of the item series and ``__other__``.

The job writes only the (series, period) pairs that have lines. The driver fills the
missing periods with zeros, from the first to the last period of the whole data (over all
series), so that every series has the same regular index: days, or weeks named by their
Monday (weeks run Monday to Sunday).

Published layout (``<output>/``)
--------------------------------
``part-*``
    One JSON object per series and period (see :mod:`mr_jobs.sales` for the fields),
    series in the order ``total``, the top items by revenue rank, ``__other__``, and
    periods ascending within each series; filled periods have zeros.
``series.csv``
    The same rows in long format, with the header
    ``series,period,revenue,quantity,orders,customers`` (one row per series and period;
    pivot on ``period`` for a wide table).
With ``as_of`` both passes reject the lines dated after it (``after_as_of``), as the RFM
stage does, so the series end where the RFM rows of the same ``as_of`` do.

``_manifest.json``, ``_SUCCESS``
    Line accounting (of the series pass; the ranking pass reads the same lines and is
    checked to agree) and ``details``: ``period``, ``periods``, ``first_period``,
    ``last_period``, ``series``, ``top_n``, ``top_items`` (with their revenue), ``items``
    (distinct items seen), ``other_items`` (items in ``__other__``),
    ``lines_without_item``, ``filled_rows``, ``as_of`` and the seconds of each pass.
"""

import datetime
import json
import os
import tempfile
from typing import NamedTuple

import pandas as pd

from hdfs_io import Publication, get_filesystem
from models.checks import check_int
from models.inputs import describe_inputs, local_inputs
from models.job_runner import AccountingError, run_job
from models.manifest import Stopwatch, build_manifest
from models.outputs import csv_string, write_json_parts
from models.progress import summarize_manifest
from models.stages.sales import DEFAULT_PERIOD, DEFAULT_TOP_N
from mr_jobs.job_options import schema_to_args
from mr_jobs.records import parse_as_of
from mr_jobs.sales import (
    COUNTER_GROUP_SALES,
    MAX_PERIODS,
    OTHER_SERIES,
    PERIODS,
    SALES_COLUMNS,
    TOTAL_SERIES,
    MRSalesSeries,
)

__all__ = [
    "run_sales_stage",
    "select_top_items",
    "fill_periods",
    "SERIES_CSV",
    "MAX_PERIODS",
    "TooManyPeriodsError",
]

SERIES_CSV = "series.csv"

_RESERVED = (TOTAL_SERIES, OTHER_SERIES)


def select_top_items(item_rows, top_n):
    """The ``top_n`` items with the most revenue, ties broken by item id (ascending).

    Parameters
    ----------
    item_rows : iterable of dict
        Rows of the job's ``--rank-items`` output (``item_id``, ``revenue_micros``).
    top_n : int
        Prior validation is assumed (an int >= 0).

    Returns
    -------
    list of dict
        The chosen rows, best first.

    Examples
    --------
    >>> rows = [{"item_id": "b", "revenue_micros": 5}, {"item_id": "a", "revenue_micros": 5},
    ...         {"item_id": "c", "revenue_micros": 9}]
    >>> [r["item_id"] for r in select_top_items(rows, 2)]
    ['c', 'a']
    """
    ranked = sorted(item_rows, key=lambda r: (-r["revenue_micros"], r["item_id"]))
    return ranked[:top_n]


class TooManyPeriodsError(ValueError):
    """The series would span more periods than allowed (see :data:`MAX_PERIODS`)."""


def _period_range(first, last, period, max_periods=MAX_PERIODS):
    """Every period start from ``first`` to ``last`` (``YYYY-MM-DD`` strings), inclusive.

    Raises :class:`TooManyPeriodsError` before building the list when there would be more
    than ``max_periods``.
    """
    step = 1 if period == "D" else 7
    start = datetime.date.fromisoformat(first).toordinal()
    end = datetime.date.fromisoformat(last).toordinal()
    count = (end - start) // step + 1
    if count > max_periods:
        unit = "days" if period == "D" else "weeks"
        raise TooManyPeriodsError(
            f"the sales series would span {count:,} {unit} ({first} .. {last}), more than "
            f"max_periods={max_periods:,}: narrow the input's dates (--date-window, "
            "--as-of) or raise --max-periods"
        )
    return [datetime.date.fromordinal(o).isoformat() for o in range(start, end + 1, step)]


def fill_periods(rows, series_order, period, max_periods=MAX_PERIODS):
    """Rows for every series and every period from the first to the last, zeros where
    the job wrote none.

    Parameters
    ----------
    rows : list of dict
        The job's rows (``series``, ``period`` and the four measures).
    series_order : list of str
        The series to return, in order; a series without any row gets zeros throughout.
    period : {"D", "W"}
        Prior validation is assumed.
    max_periods : int
        The most periods allowed (see :data:`MAX_PERIODS`).

    Returns
    -------
    (list of dict, list of str)
        The rows sorted by series (in ``series_order``) then period, and the periods.

    Raises
    ------
    TooManyPeriodsError
        When the rows span more than ``max_periods`` periods (checked first).
    """
    if not rows:
        return [], []
    first, last = min(r["period"] for r in rows), max(r["period"] for r in rows)
    periods = _period_range(first, last, period, max_periods)
    found = {(r["series"], r["period"]): r for r in rows}
    filled = []
    for series in series_order:
        for p in periods:
            row = found.get((series, p))
            if row is None:
                row = {
                    "series": series,
                    "period": p,
                    "revenue": 0.0,
                    "quantity": 0,
                    "orders": 0,
                    "customers": 0,
                }
            filled.append({c: row[c] for c in SALES_COLUMNS})
    return filled, periods


def _frame(rows):
    frame = pd.DataFrame(rows, columns=list(SALES_COLUMNS))
    frame["period"] = pd.to_datetime(frame["period"], format="%Y-%m-%d")
    return frame.astype({"revenue": "float64", "orders": "int64", "customers": "int64"})


def _check_arguments(period, top_n, max_periods):
    if period not in PERIODS:
        raise ValueError(f"period={period!r} should be one of {PERIODS}")
    check_int("top_n", top_n, 0)
    check_int("max_periods", max_periods, 1)


def run_sales_stage(
    input_paths,
    output_path,
    *,
    schema,
    period=DEFAULT_PERIOD,
    top_n=DEFAULT_TOP_N,
    as_of=None,
    max_periods=MAX_PERIODS,
    runner="inline",
    conf_paths=None,
    overwrite=False,
    reporter=None,
):
    """Compute regular sales series with MapReduce and publish them.

    Parameters
    ----------
    input_paths : list of str
        Order-line files or directories, local or ``hdfs://``.
    output_path : str
        Where to publish (a directory; refused if it exists and not ``overwrite``).
    schema : mr_jobs.records.InputSchema
        How to read the input.
    period : {"D", "W"}
        Day, or Monday-to-Sunday week named by its Monday. Default ``W``.
    top_n : int
        Items with a series of their own (>= 0); the others make ``__other__``.
    as_of : str, optional
        ``YYYY-MM-DD``: the lines dated after it are rejected as ``after_as_of``.
    max_periods : int
        The most periods a series may span (default :data:`MAX_PERIODS`); more is refused
        with :class:`TooManyPeriodsError` before anything is published.
    runner : str
        mrjob runner.
    conf_paths : list of str or None
        mrjob config files (see :func:`models.job_runner.run_job`).
    overwrite : bool
    reporter : models.progress.Reporter, optional

    Returns
    -------
    (pandas.DataFrame, dict)
        The published series in long format (columns ``series``, ``period`` as
        ``datetime64``, ``revenue``, ``quantity``, ``orders``, ``customers``; one row
        per series and period, in the published order) and the manifest.

    Raises
    ------
    ValueError
        A bad ``period``, ``top_n`` or ``as_of`` (before anything runs), or a top item whose id is
        a reserved series name (``total``, ``__other__``).
    hdfs_io.PathExists, hdfs_io.UnsafePathError
        When ``output_path`` may not be published to (before anything runs).
    models.job_runner.AccountingError
        When the lines do not add up, or the two passes read different lines.

    Notes
    -----
    See the module docstring for the passes, the series and the published layout.
    """
    _check_arguments(period, top_n, max_periods)
    if as_of is not None:
        as_of = datetime.date.fromordinal(parse_as_of(as_of)).isoformat()
    say = reporter.progress("sales") if reporter else (lambda message: None)
    fs, out = get_filesystem(output_path)
    watch = Stopwatch()
    inputs = describe_inputs(input_paths)
    base_args = schema_to_args(schema) + ["--period", period]
    if as_of is not None:
        base_args += ["--as-of", as_of]
    jobs = {"runner": runner, "conf_paths": conf_paths, "progress": say}
    with Publication(fs, out, overwrite=overwrite) as publication:
        total = sum(i["bytes"] for i in inputs)
        say(f"{len(inputs)} input(s), {total:,} bytes -> {fs.uri(out)}")
        with (
            local_inputs(input_paths, runner, progress=say) as readable_inputs,
            tempfile.TemporaryDirectory(prefix="crm-sales-") as tmp_dir,
        ):
            ranking = _Ranking()
            series_args = list(base_args)
            if schema.has("item_id"):
                ranking = _rank_items(readable_inputs, base_args, top_n, jobs)
                series_args += ["--top-items", _write_top_items(ranking.top, tmp_dir)]
            with run_job(MRSalesSeries, readable_inputs, series_args, **jobs) as run:
                rows = list(run.rows())
                lines, job_seconds = run.lines, run.seconds
                without_item = _without_item(run.counters)
        if ranking.lines is not None and ranking.lines != lines:
            raise AccountingError(
                f"the ranking pass read lines={ranking.lines} but the series pass "
                f"lines={lines}: the input changed between the passes"
            )
        series_order = _series_order(rows, ranking.top)
        filled, periods = fill_periods(rows, series_order, period, max_periods)
        say(
            f"job finished in {job_seconds:.1f} s; publishing {len(series_order)} series x "
            f"{len(periods)} periods"
        )
        written = write_json_parts(publication, filled)
        publication.write_file(SERIES_CSV, csv_string(SALES_COLUMNS, filled))
        manifest = build_manifest(
            "sales",
            inputs=inputs,
            parameters={
                "schema": schema.to_dict(),
                "period": period,
                "top_n": top_n,
                "as_of": as_of,
                "max_periods": max_periods,
                "overwrite": overwrite,
            },
            runner=runner,
            lines=lines,
            rows_written=written,
            stopwatch=watch,
            outputs=[SERIES_CSV],
            details=_details(
                ranking,
                periods,
                series_order,
                rows,
                filled,
                without_item,
                job_seconds,
                top_n,
                period=period,
                as_of=as_of,
            ),
        )
        publication.commit(manifest)
    summarize_manifest(reporter, "sales", manifest)
    return _frame(filled), manifest


class _Ranking(NamedTuple):
    """The ranking pass's outcome; the defaults are those of an input without items."""

    top: tuple = ()
    items_seen: int = 0
    seconds: float = None
    lines: int = None


def _rank_items(readable_inputs, base_args, top_n, jobs):
    """Run the ``--rank-items`` pass and keep the ``top_n`` items (one row per item)."""
    with run_job(MRSalesSeries, readable_inputs, base_args + ["--rank-items"], **jobs) as run:
        item_rows = list(run.rows())
        ranking = _Ranking([], len(item_rows), run.seconds, run.lines)
    top = select_top_items(item_rows, top_n)
    for row in top:
        if row["item_id"] in _RESERVED:
            raise ValueError(
                f"item_id={row['item_id']!r} is among the top {top_n} items but "
                f"is a reserved series name {_RESERVED}; rename the item"
            )
    jobs["progress"](
        f"ranked {ranking.items_seen:,} items in {ranking.seconds:.1f} s; top {len(top)} kept"
    )
    return ranking._replace(top=top)


def _write_top_items(top, tmp_dir):
    """The ``--top-items`` file of the series pass: a JSON array of the kept item ids."""
    path = os.path.join(tmp_dir, "top-items.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump([r["item_id"] for r in top], f, ensure_ascii=False)
    return path


def _series_order(rows, top):
    """``total``, the top items by rank, then ``__other__`` when it has rows."""
    if not rows:
        return []
    order = [TOTAL_SERIES] + [r["item_id"] for r in top]
    if any(r["series"] == OTHER_SERIES for r in rows):
        order.append(OTHER_SERIES)
    return order


def _details(
    ranking,
    periods,
    series_order,
    rows,
    filled,
    without_item,
    job_seconds,
    top_n,
    *,
    period,
    as_of,
):
    """The manifest's ``details`` (see the module docstring)."""
    return {
        "period": period,
        "period_label": "day" if period == "D" else "week starting on Monday",
        "periods": len(periods),
        "first_period": periods[0] if periods else None,
        "last_period": periods[-1] if periods else None,
        "series": series_order,
        "top_n": top_n,
        "top_items": [{"item_id": r["item_id"], "revenue": r["revenue"]} for r in ranking.top],
        "items": ranking.items_seen,
        "other_items": max(ranking.items_seen - len(ranking.top), 0),
        "lines_without_item": without_item,
        "as_of": as_of,
        "rows_from_job": len(rows),
        "filled_rows": len(filled) - len(rows),
        "csv_layout": "long",
        "job_seconds": round(job_seconds, 3),
        "rank_job_seconds": None if ranking.seconds is None else round(ranking.seconds, 3),
    }


def _without_item(counters):
    first = counters[0] if counters else {}
    return first.get(COUNTER_GROUP_SALES, {}).get("lines_without_item", 0)
