"""Benchmark the forecasting module: fit and forecast 200 series with 1 and 2 processes.

The series are what the sales job writes for the forecasts: weekly (or daily) revenue of
the series ``total``, the top items and ``__other__`` (the remaining items), built here with
pandas from a log written by the product's generator, :func:`models.synthetic.generate`
(``dirty_rate=0``, so every line is a purchase), over the full periods of the log (a week
is kept only when all its seven days are inside the span). With the default 200-item
catalogue, ``--series 200`` is ``total``, the top 198 items and ``__other__``.

Timed: :func:`models.forecast.forecast_series` on all series (``--horizon`` periods ahead,
the backtest on the last ``--backtest`` periods: two model selections per series), once per
number of processes in ``--processes``. The results of every run are checked equal to the
first run's (forecasts, backtest, fit records without their seconds) before the times are
compared.

``OMP_NUM_THREADS=1`` (and the other BLAS thread variables) are set before numpy loads,
so that each process uses one core and the ratio measures the process pool.

Run from the repository root::

    python benchmarks/bench_forecast.py                         # 200 weekly series, 1 and 2
    python benchmarks/bench_forecast.py --period D --series 20 --json /tmp/forecast.json
"""

import os

# Before numpy/pandas/statsmodels are imported: one BLAS/OpenMP thread per process.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from models import synthetic  # noqa: E402
from models.forecast import forecast_series  # noqa: E402

OTHER = "__other__"


def progress(message):
    """Progress on standard error (standard output holds the table)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def build_series(customers, seed, period, n_series, work_dir):
    """``{name: Series}``: total, the top ``n_series - 2`` items and ``__other__``.

    Parameters
    ----------
    customers : int
        Customers of the generated log.
    seed : int
        The generator's seed.
    period : {"D", "W"}
        Daily, or Monday-start weeks wholly inside the log.
    n_series : int
        Number of series (>= 3).
    work_dir : pathlib.Path
        Where the log is written.

    Returns
    -------
    dict of str to pandas.Series
    """
    path = work_dir / f"forecast-{customers}-{seed}.csv"
    if not path.exists():
        synthetic.generate(path, customers=customers, seed=seed, dirty_rate=0.0)
    raw = pd.read_csv(path, usecols=["timestamp", "item_id", "quantity", "unit_price"])
    day = pd.to_datetime(raw["timestamp"], format="ISO8601").dt.normalize()
    revenue = raw["quantity"] * raw["unit_price"]
    by_day_item = revenue.groupby([day, raw["item_id"]]).sum().unstack(fill_value=0.0)
    by_day_item = by_day_item.asfreq("D", fill_value=0.0)
    if period == "W":
        monday = by_day_item.index - pd.to_timedelta(by_day_item.index.day_of_week, unit="D")
        full = pd.Series(1, index=by_day_item.index).groupby(monday).sum() == 7
        table = by_day_item.groupby(monday).sum().loc[full]
    else:
        table = by_day_item
    top = table.sum().sort_values(ascending=False).index[: n_series - 2]
    series = {"total": table.sum(axis=1)}
    series.update({item: table[item] for item in top})
    series[OTHER] = table.drop(columns=top).sum(axis=1)
    return series


def time_run(series, args, processes):
    """One timed :func:`forecast_series` run; returns (seconds, result)."""
    t0 = time.perf_counter()
    result = forecast_series(
        series,
        period=args.period,
        horizon=args.horizon,
        backtest_periods=args.backtest,
        processes=processes,
        progress=progress,
    )
    return time.perf_counter() - t0, result


def check_same(first, other, label):
    """Raise AssertionError when two results differ (fit seconds aside)."""
    pd.testing.assert_frame_equal(first.forecasts, other.forecasts, obj=f"{label} forecasts")
    pd.testing.assert_frame_equal(first.backtest, other.backtest, obj=f"{label} backtest")
    drop = ["seconds"]
    pd.testing.assert_frame_equal(
        first.fits.drop(columns=drop), other.fits.drop(columns=drop), obj=f"{label} fits"
    )


def format_table(rows):
    """The measurements as a plain-text table."""
    head = ["processes", "series", "best s", "median s", "runs", "series/s", "speed-up vs 1"]
    lines = [head]
    base = next((r["best"] for r in rows if r["processes"] == 1), None)
    for r in rows:
        lines.append(
            [
                str(r["processes"]),
                str(r["series"]),
                f"{r['best']:.2f}",
                f"{r['median']:.2f}",
                str(len(r["seconds"])),
                f"{r['series'] / r['best']:.2f}",
                "-" if base is None else f"{base / r['best']:.2f}x",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )


def summarize_result(result):
    """Counts of fit statuses, models and backtest medians of a result."""
    final = result.fits[result.fits["stage"] == "final"]
    bt = result.backtest
    return {
        "status": final["status"].value_counts().to_dict(),
        "fallback": int(final["fallback"].notna().sum()),
        "with_warnings": int(final["warnings"].map(bool).sum()),
        "transform": final["transform"].value_counts().to_dict(),
        "median_mase": float(bt["mase"].median()),
        "median_relative_mae": float(bt["relative_mae"].median()),
        "total_mase": float(bt.set_index("series").loc["total", "mase"]),
    }


def parse_args(argv=None):
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--series", type=int, default=200, help="series to forecast (>= 3)")
    parser.add_argument("--period", choices=("D", "W"), default="W")
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--backtest", type=int, default=8, help="held-out periods")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1, help="runs per number of processes")
    parser.add_argument("--customers", type=int, default=4000, help="of the generated log")
    parser.add_argument("--seed", type=int, default=42, help="the generator's seed")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the log goes")
    parser.add_argument("--json", type=Path, default=None, help="write the measurements here")
    args = parser.parse_args(argv)
    if args.series < 3:
        parser.error(f"--series={args.series} should be >= 3 (total, items, other)")
    if args.repeat < 1:
        parser.error(f"--repeat={args.repeat} should be >= 1")
    if any(p < 1 for p in args.processes):
        parser.error(f"--processes={args.processes} should all be >= 1")
    return args


def main(argv=None):
    """Build the series, time every number of processes, check equal results, print.

    Returns
    -------
    int
        The exit status.
    """
    args = parse_args(argv)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0,)
    if load[0] > 0.5:
        progress(f"note: load average {load[0]:.2f}: numbers may be noisy")
    with tempfile.TemporaryDirectory(prefix="bench_forecast_") as tmp:
        work_dir = args.work_dir or Path(tmp)
        work_dir.mkdir(parents=True, exist_ok=True)
        series = build_series(args.customers, args.seed, args.period, args.series, work_dir)
    n = len(series)
    length = len(series["total"])
    progress(f"{n} series of {length} periods ({args.period})")
    rows, first = [], None
    for processes in args.processes:
        seconds = []
        for run in range(args.repeat):
            progress(f"processes={processes}, run {run + 1}/{args.repeat} ...")
            s, result = time_run(series, args, processes)
            seconds.append(s)
            progress(f"  {s:.2f} s")
            if first is None:
                first = result
            else:
                check_same(first, result, f"processes={processes}")
        rows.append(
            {
                "processes": processes,
                "series": n,
                "seconds": seconds,
                "best": min(seconds),
                "median": statistics.median(seconds),
            }
        )
    summary = summarize_result(first)
    end_load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0,)
    print(
        f"# cpus {os.cpu_count()}, python {platform.python_version()}, "
        f"statsmodels {metadata.version('statsmodels')}, pandas {pd.__version__}, "
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
        f"load {load[0]:.2f} -> {end_load[0]:.2f}"
    )
    print(
        f"# {n} series x {length} periods ({args.period}), horizon {args.horizon}, "
        f"backtest {args.backtest}; checked: every run equals the first"
    )
    print(format_table(rows))
    print(
        f"# fits: {summary['status']}, {summary['fallback']} with a fallback, "
        f"{summary['with_warnings']} with warnings; scales {summary['transform']}"
    )
    print(
        f"# backtest: median MASE {summary['median_mase']:.3f}, median MAE / seasonal "
        f"naive {summary['median_relative_mae']:.3f}, total MASE {summary['total_mase']:.3f}"
    )
    if args.json:
        payload = {"args": vars(args), "rows": rows, "summary": summary}
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
