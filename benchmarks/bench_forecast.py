"""Benchmark the forecasts against statsforecast, and 10,000 series through the MapReduce job.

Engines (``--sets``)
    The same series and the same backtest for every engine: the last ``--backtest`` weeks
    held out, one fit per series on the rest, forecast over the held-out weeks, in one
    process. This project: :func:`models.forecast.forecast_series` on the fitted part
    (``backtest_periods=0``, ``processes=1``: the model choice with its own rolling
    origins inside the fitted part, then the forecast), ``method="select"`` and, with
    ``--arima-grid``, the AIC grid. statsforecast 2.1.1: ``AutoETS``, ``AutoTheta
    (season_length=52)``, ``AutoARIMA``, each model's first fit (its JIT warm-up) timed
    apart (and this project's first call, on one series, likewise); each engine's seconds
    are the fastest of ``round(200 / series)`` runs (at most 20: CDNOW's one series is 20
    runs). statsforecast needs pandas < 3, which the project does not run, so it runs in a
    Python environment of its own (``--statsforecast-python``; by default one is created
    under the work directory with ``pip install statsforecast==2.1.1``), fed the values as
    JSON. Reported per engine: seconds, milliseconds per series, and the MAE relative to
    the seasonal naive's on the held-out weeks (lag 52 when the fitted part has at least
    65 weeks, else 1, as :mod:`models.forecast` sets it) of the ``total`` series and its
    median over the series; then the ratios the product's goals are about: this
    project's time per series over AutoETS's, and its relative MAEs against the best
    statsforecast model's.

    Series: ``200``, weekly revenue of ``total``, the top 198 items and ``__other__`` from
    a log of the product's generator (4,000 customers, seed 42, no dirty lines; full
    weeks only); ``builtin``, total, the top 20 items and the rest of the same log (close
    to ``crm-mr run``'s built-in data); ``cdnow``, CDNOW's weekly revenue (total only, full weeks).
Scale (``--scale N``)
    ``N`` synthetic weekly item series of ``--scale-weeks`` weeks (level, trend, yearly
    season and noise drawn per series; one in ten intermittent: mostly zero weeks) written
    as a published sales output (4 part files), forecast by the MapReduce job
    :mod:`mr_jobs.forecast_series` with the local runner (two reduce tasks on two cores:
    per series the choice, the forecast and the 8-week backtest, so two choices) and
    published. Reported: seconds, series per second, the series that failed or fell
    back, the driver's peak RSS; and, as the reference in the same run, statsforecast
    AutoETS fitting each series once in one process.

``OMP_NUM_THREADS=1`` (and the other BLAS thread variables) are set before numpy loads.

Run from the repository root::

    python benchmarks/bench_forecast.py                         # 200 and cdnow
    python benchmarks/bench_forecast.py --sets builtin,200,cdnow --json /tmp/forecast.json
    python benchmarks/bench_forecast.py --sets "" --scale 10000
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from models import forecast_reconcile as reconcile  # noqa: E402
from models import synthetic  # noqa: E402
from models.forecast import forecast_series, seasonal_naive  # noqa: E402

STATSFORECAST = "statsforecast==2.1.1"
OTHER = "__other__"

#: Run by the statsforecast environment: JSON in (series, horizon, models), JSON out.
WORKER = r"""
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from statsforecast.models import AutoARIMA, AutoETS, AutoTheta
job = json.load(sys.stdin)
h = job["horizon"]
makers = {
    "AutoETS": lambda: AutoETS(),
    "AutoTheta(season_length=52)": lambda: AutoTheta(season_length=52),
    "AutoARIMA": lambda: AutoARIMA(),
}
out = {}
for name in job["models"]:
    make = makers[name]
    first = next(iter(job["series"].values()))
    t = time.perf_counter()
    make().forecast(y=np.asarray(first, dtype=float), h=h)  # warm-up, timed apart
    warm = time.perf_counter() - t
    best = None
    for _ in range(job["repeats"]):  # the fastest run
        forecasts, t = {}, time.perf_counter()
        for key, values in job["series"].items():
            try:
                f = make().forecast(y=np.asarray(values, dtype=float), h=h)["mean"]
                forecasts[key] = [float(v) for v in f]
            except Exception as exc:
                forecasts[key] = str(exc)
        seconds = time.perf_counter() - t
        best = seconds if best is None else min(best, seconds)
    out[name] = {"seconds": best, "warm_up": warm, "forecasts": forecasts}
json.dump(out, sys.stdout)
"""
MODELS = ("AutoETS", "AutoTheta(season_length=52)", "AutoARIMA")


def progress(message):
    """Progress on standard error (standard output holds the tables)."""
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


def cdnow_weekly():
    """``{"total": Series}``: CDNOW's revenue per full Monday-start week."""
    from lifetimes import datasets

    path = Path(datasets.__file__).parent / "CDNOW_master.txt"
    raw = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str, "date": str})
    day = pd.to_datetime(raw["date"], format="%Y%m%d")
    daily = raw["dollar_value"].astype(float).groupby(day).sum().asfreq("D", fill_value=0.0)
    monday = daily.index - pd.to_timedelta(daily.index.day_of_week, unit="D")
    full = pd.Series(1, index=daily.index).groupby(monday).sum() == 7
    return {"total": daily.groupby(monday).sum().loc[full]}


def statsforecast_python(work_dir, given):
    """The Python of an environment with statsforecast (created when not given)."""
    if given:
        return given
    venv = work_dir / "statsforecast-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        progress(f"installing {STATSFORECAST} into {venv} (it needs pandas < 3) ...")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", STATSFORECAST], check=True)
    return str(python)


def relative_maes(series, forecasts, backtest):
    """``{name: MAE / seasonal naive MAE}`` on the held-out periods (None when undefined)."""
    out = {}
    for name, s in series.items():
        y = s.to_numpy(dtype=float)
        train, test = y[:-backtest], y[-backtest:]
        m = 52 if len(train) >= 1.25 * 52 else 1
        naive = np.mean(np.abs(seasonal_naive(train, backtest, m)[0] - test))
        f = forecasts.get(name)
        if isinstance(f, str) or f is None or naive == 0:
            out[name] = None
            continue
        out[name] = float(np.mean(np.abs(np.asarray(f) - test)) / naive)
    return out


def ours(series, backtest, method, repeats=1, reconcile=True):
    """Seconds (the fastest of ``repeats`` runs, after a warm-up run on the first series)
    and relative MAEs of this project: one choice and forecast per series, then (as the
    forecasts stage does by default) the top-down reconciliation of
    :mod:`models.forecast_reconcile` when the set has ``total`` and ``__other__``."""
    train = {k: s.iloc[:-backtest] for k, s in series.items()}
    kwargs = dict(period="W", horizon=backtest, backtest_periods=0, method=method, processes=1)
    forecast_series(dict([next(iter(train.items()))]), **kwargs)  # warm-up, not timed
    seconds = None
    for _ in range(repeats):
        t = time.perf_counter()
        result = forecast_series(train, **kwargs)
        forecasts = coherent(result.forecasts) if reconcile else plain(result.forecasts)
        took = time.perf_counter() - t
        seconds = took if seconds is None else min(seconds, took)
    return seconds, relative_maes(series, forecasts, backtest)


def plain(frame):
    """``{series: forecasts by step}`` of a forecasts frame."""
    return {
        name: group.sort_values("step")["forecast"].to_numpy()
        for name, group in frame.groupby("series")
    }


def coherent(frame):
    """:func:`plain` after the stage's reconciliation (nothing changes when its plan
    rescales nothing, as on CDNOW's one series)."""
    records = []
    for name, group in frame.sort_values("step").groupby("series", sort=False):
        rows = [
            {"period": p.strftime("%Y-%m-%d"), "forecast": f, "lower": lo, "upper": hi}
            for p, f, lo, hi in zip(
                group["period"], group["forecast"], group["lower"], group["upper"], strict=True
            )
        ]
        records.append({"series": name, "forecasts": rows, "backtest": None, "held_out": None})
    plan = reconcile.plan(records, "revenue")
    return {
        r["series"]: np.array(
            [row["forecast"] for row in reconcile.reconciled(r, plan)["forecasts"]]
        )
        for r in records
    }


def theirs(series, horizon, python, models=MODELS, repeats=1):
    """``{model: (seconds (the fastest of ``repeats`` runs), warm-up seconds, forecasts)}``
    of statsforecast."""
    job = {"horizon": horizon, "models": list(models), "series": series, "repeats": repeats}
    done = subprocess.run(
        [python, "-c", WORKER], input=json.dumps(job), capture_output=True, text=True, check=True
    )
    found = json.loads(done.stdout)
    return {m: (f["seconds"], f["warm_up"], f["forecasts"]) for m, f in found.items()}


def summary_row(name, seconds, rel, n, warm=None):
    finite = [v for v in rel.values() if v is not None]
    return {
        "engine": name,
        "seconds": seconds,
        "warm_up": warm,
        "ms_per_series": 1000 * seconds / n,
        "total": rel.get("total"),
        "median": float(np.median(finite)) if finite else None,
    }


def run_set(label, series, backtest, python, arima_grid):
    """Every engine on one set; prints its table and the goals' ratios."""
    n = len(series)
    repeats = repeats_for(n)
    rows = []
    for method in ("select", "arima") if arima_grid else ("select",):
        progress(f"{label}: this project, method={method} ...")
        seconds, rel = ours(series, backtest, method, repeats if method == "select" else 1)
        rows.append(summary_row(f"this project, method={method}", seconds, rel, n))
    seconds, rel = ours(series, backtest, "select", repeats, reconcile=False)
    rows.append(summary_row("  the same, not reconciled", seconds, rel, n))
    progress(f"{label}: statsforecast ...")
    fitted = {k: s.to_numpy(dtype=float)[:-backtest].tolist() for k, s in series.items()}
    found = theirs(fitted, backtest, python, repeats=repeats)
    for model, (seconds, warm, forecasts) in found.items():
        rel = relative_maes(series, forecasts, backtest)
        rows.append(summary_row(f"statsforecast {model}", seconds, rel, n, warm))
    print(
        f"\n{label}: {n} series x {len(series['total'])} weeks, backtest {backtest}; "
        f"seconds: the fastest of {repeats} run{'s' if repeats > 1 else ''}"
    )
    print(f"{'engine':<44} {'s':>8} {'ms/series':>10} {'total rel. MAE':>15} {'median':>8}")
    for r in rows:
        total = "-" if r["total"] is None else f"{r['total']:.3f}"
        median = "-" if r["median"] is None else f"{r['median']:.3f}"
        warm = "" if r["warm_up"] is None else f" (+{r['warm_up']:.2f} s warm-up)"
        print(
            f"{r['engine']:<44} {r['seconds']:>8.2f} {r['ms_per_series']:>10.1f} "
            f"{total:>15} {median:>8}{warm}"
        )
    print(goals(rows))
    return rows


def repeats_for(n):
    """Timed runs of a set of ``n`` series (its fastest is reported): enough for about 200
    fits, at most 20, so that a one-series set is not one noisy measurement."""
    return min(20, max(1, round(200 / n)))


def goals(rows):
    """The ratios of the issue's goals: time vs AutoETS, accuracy vs the best model."""
    select = rows[0]
    sf = [r for r in rows if r["engine"].startswith("statsforecast")]
    ets = next(r for r in sf if r["engine"].endswith("AutoETS"))
    parts = [f"time per series / AutoETS's: {select['ms_per_series'] / ets['ms_per_series']:.2f}x"]
    for key in ("total", "median"):
        scored = [r for r in sf if r[key] is not None]
        if select[key] is None or not scored:
            continue
        best = min(scored, key=lambda r: r[key])
        parts.append(
            f"{key} rel. MAE {select[key]:.4f} vs best {best[key]:.4f} "
            f"({best['engine'].removeprefix('statsforecast ')})"
        )
    return "goals: " + "; ".join(parts)


# -- scale: the MapReduce job ------------------------------------------------------------


def synthetic_series(n_series, weeks, seed=7):
    """``(mondays, values)``: ``n_series`` weekly item series (rows: series)."""
    rng = np.random.default_rng(seed)
    t = np.arange(weeks)
    level = rng.lognormal(5, 1, (n_series, 1))
    trend = 1 + rng.normal(0, 0.004, (n_series, 1)) * t
    amplitude = rng.uniform(0, 0.4, (n_series, 1))
    phase = rng.uniform(0, 2 * np.pi, (n_series, 1))
    season = 1 + amplitude * np.sin(2 * np.pi * t / 52.18 + phase)
    values = level * np.clip(trend, 0.2, None) * season * rng.lognormal(0, 0.15, (n_series, weeks))
    sparse = rng.random(n_series) < 0.1
    values[sparse] = rng.poisson(0.3, (int(sparse.sum()), weeks)) * level[sparse]
    start = datetime.date(2023, 1, 2)
    mondays = [(start + datetime.timedelta(weeks=int(w))).isoformat() for w in t]
    return mondays, np.round(values, 2)


def write_sales_output(path, mondays, values, parts=4):
    """Publish ``values`` as a sales output (stage ``sales``, weekly) in ``parts`` files."""
    from hdfs_io import LocalFileSystem, Publication
    from models.manifest import Stopwatch, build_manifest

    fs, watch = LocalFileSystem(), Stopwatch()
    names = [f"I{i:05d}" for i in range(len(values))]
    with Publication(fs, str(path), overwrite=True) as publication:
        for index, chunk in enumerate(np.array_split(np.arange(len(values)), parts)):
            publication.write_part(
                index,
                (
                    json.dumps(
                        {
                            "series": names[i],
                            "period": week,
                            "revenue": float(v),
                            "quantity": 0,
                            "orders": 0,
                            "customers": 0,
                        }
                    )
                    for i in chunk
                    for week, v in zip(mondays, values[i], strict=True)
                ),
            )
        rows = values.size
        details = {
            "period": "W",
            "periods": len(mondays),
            "first_period": mondays[0],
            "last_period": mondays[-1],
            "series": len(names),
        }
        publication.commit(
            build_manifest(
                "sales",
                inputs=[],
                parameters={},
                runner=None,
                lines={"read": rows, "accepted": rows, "rejected": 0, "rejected_by_reason": {}},
                rows_written=rows,
                stopwatch=watch,
                details=details,
            )
        )
    return names


def run_scale(n_series, weeks, work, python):
    """The scale run (see the module docstring); prints and returns its figures."""
    from models.forecast_stage import run_forecast_stage

    mondays, values = synthetic_series(n_series, weeks)
    sales = work / f"scale-sales-{n_series}"
    progress(f"scale: writing {n_series:,} series x {weeks} weeks as a sales output ...")
    write_sales_output(sales, mondays, values)
    progress("scale: the forecasts job with the local runner ...")
    t = time.perf_counter()
    _, manifest = run_forecast_stage(
        str(sales),
        str(work / f"scale-forecasts-{n_series}"),
        runner="local",
        conf_paths=[],
        horizon=8,
        overwrite=True,
    )
    seconds = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    details = manifest["details"]
    progress("scale: statsforecast AutoETS, one fit per series, one process ...")
    fitted = {f"s{i}": row.tolist() for i, row in enumerate(values[:, :-8])}
    sf_seconds, sf_warm, _ = theirs(fitted, 8, python, ("AutoETS",))["AutoETS"]
    figures = {
        "series": n_series,
        "weeks": weeks,
        "seconds": seconds,
        "series_per_second": n_series / seconds,
        "failed": len(details["series_failed"]),
        "fallback": len(details["series_fallback"]),
        "models_won": details["models_won"],
        "median_relative_mae": details["backtest_summary"]["median_relative_mae"],
        "driver_peak_rss_mb": rss,
        "autoets_seconds": sf_seconds,
        "autoets_warm_up": sf_warm,
    }
    print(f"\nscale: {n_series:,} weekly series x {weeks} weeks through the forecasts job")
    print(
        f"local runner, 2 cores: {seconds:.1f} s ({n_series / seconds:.1f} series/s; the "
        f"choice, forecast and backtest of each), {figures['failed']} failed, "
        f"{figures['fallback']} fell back; median backtest rel. MAE "
        f"{figures['median_relative_mae']:.3f}; driver peak RSS {rss:.0f} MB"
    )
    print(f"models won: {details['models_won']}")
    print(
        f"reference, statsforecast AutoETS, one fit per series in one process: "
        f"{sf_seconds:.1f} s (+{sf_warm:.2f} s warm-up)"
    )
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="200,cdnow", help="builtin, 200, cdnow ('' for none)")
    parser.add_argument("--backtest", type=int, default=8)
    parser.add_argument("--arima-grid", action="store_true", help="also time method=arima")
    parser.add_argument("--scale", type=int, default=0, help="series through the job (0: none)")
    parser.add_argument("--scale-weeks", type=int, default=104)
    parser.add_argument("--statsforecast-python", help="a Python with statsforecast")
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-forecast-"))
    work.mkdir(parents=True, exist_ok=True)
    python = statsforecast_python(work, args.statsforecast_python)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f}, {os.cpu_count()} cpus, OMP_NUM_THREADS=1")
    results = {}
    for label in filter(None, args.sets.split(",")):
        if label == "cdnow":
            series = cdnow_weekly()
        else:
            n = 22 if label == "builtin" else int(label)
            series = build_series(4000, 42, "W", n, work)
        results[label] = run_set(label, series, args.backtest, python, args.arima_grid)
    if args.scale:
        results["scale"] = run_scale(args.scale, args.scale_weeks, work, python)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
