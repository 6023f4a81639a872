"""Benchmark the forecasts' model choice against statsforecast's AutoETS, AutoTheta, AutoARIMA.

The same series and the same backtest for every engine: the last ``--backtest`` periods
held out, the models fitted on the rest, one process each. Reported per engine: seconds
(statsforecast's first fit of each model, its warm-up, timed apart), and the MAE relative to
the seasonal naive's on the held-out periods (lag 52 when the fitted part has at least 65
weeks, else 1, as :mod:`models.forecast` sets it) of the ``total`` series and its median over
the series.

This project: :func:`models.forecast.forecast_series` with ``method="select"`` (the choice
is made on the fitted part only, by its own rolling origins) and ``method="arima"`` (the
AIC grid), ``processes=1``. statsforecast needs pandas < 3, which the project does not run,
so it runs in a Python environment of its own (``--statsforecast-python``; by default one is
created under the work directory with ``pip install statsforecast==2.1.1``), fed the same
values as JSON.

Series: ``builtin``, 22 weekly revenue series (total, the top 20 items, the rest; full
weeks only) of the product's generator as ``bench_forecast.py`` builds them (4,000
customers, seed 42, no dirty lines: close to ``crm-mr run``'s built-in data, not the same
bytes), ``200``, the 200-series set of ``bench_forecast.py``, and ``cdnow``, CDNOW's
weekly revenue (total only).

Run from the repository root::

    python benchmarks/bench_forecast_engines.py                    # builtin, 200 and cdnow
    python benchmarks/bench_forecast_engines.py --sets builtin --json /tmp/engines.json
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
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

from benchmarks.bench_forecast import build_series  # noqa: E402
from models.forecast import forecast_series, seasonal_naive  # noqa: E402

STATSFORECAST = "statsforecast==2.1.1"

#: Run by the statsforecast environment: JSON in (series, horizon), JSON out.
WORKER = r"""
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from statsforecast.models import AutoARIMA, AutoETS, AutoTheta
job = json.load(sys.stdin)
h = job["horizon"]
models = {
    "AutoETS": lambda: AutoETS(),
    "AutoTheta(season_length=52)": lambda: AutoTheta(season_length=52),
    "AutoARIMA": lambda: AutoARIMA(),
}
out = {}
for name, make in models.items():
    first = next(iter(job["series"].values()))
    t = time.perf_counter()
    make().forecast(y=np.asarray(first, dtype=float), h=h)  # warm-up, timed apart
    warm = time.perf_counter() - t
    forecasts, t = {}, time.perf_counter()
    for key, values in job["series"].items():
        try:
            f = make().forecast(y=np.asarray(values, dtype=float), h=h)["mean"]
            forecasts[key] = [float(v) for v in f]
        except Exception as exc:
            forecasts[key] = str(exc)
    out[name] = {"seconds": time.perf_counter() - t, "warm_up": warm, "forecasts": forecasts}
json.dump(out, sys.stdout)
"""


def statsforecast_python(work_dir, given):
    """The Python of an environment with statsforecast (created when not given)."""
    if given:
        return given
    venv = work_dir / "statsforecast-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", STATSFORECAST], check=True)
    return str(python)


def cdnow_weekly():
    from lifetimes import datasets

    path = Path(datasets.__file__).parent / "CDNOW_master.txt"
    raw = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str, "date": str})
    day = pd.to_datetime(raw["date"], format="%Y%m%d")
    daily = raw["dollar_value"].astype(float).groupby(day).sum().asfreq("D", fill_value=0.0)
    monday = daily.index - pd.to_timedelta(daily.index.day_of_week, unit="D")
    full = pd.Series(1, index=daily.index).groupby(monday).sum() == 7
    return {"total": daily.groupby(monday).sum().loc[full]}


def relative_maes(series, forecasts, backtest):
    """``{name: MAE / seasonal naive MAE}`` on the held-out periods."""
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


def ours(series, backtest, method):
    t = time.perf_counter()
    result = forecast_series(
        series, period="W", horizon=backtest, backtest_periods=backtest, method=method
    )
    seconds = time.perf_counter() - t
    bt = result.backtest.set_index("series")["relative_mae"]
    return seconds, {k: (None if pd.isna(v) else float(v)) for k, v in bt.items()}


def theirs(series, backtest, python):
    job = {
        "horizon": backtest,
        "series": {k: s.to_numpy(dtype=float)[:-backtest].tolist() for k, s in series.items()},
    }
    done = subprocess.run(
        [python, "-c", WORKER], input=json.dumps(job), capture_output=True, text=True, check=True
    )
    out = {}
    for model, found in json.loads(done.stdout).items():
        rel = relative_maes(series, found["forecasts"], backtest)
        out[model] = (found["seconds"], found["warm_up"], rel)
    return out


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


def run_set(label, series, backtest, python):
    n = len(series)
    rows = []
    for method in ("select", "arima"):
        seconds, rel = ours(series, backtest, method)
        rows.append(summary_row(f"this project, method={method}", seconds, rel, n))
    for model, (seconds, warm, rel) in theirs(series, backtest, python).items():
        rows.append(summary_row(f"statsforecast {model}", seconds, rel, n, warm))
    print(f"\n{label}: {n} series x {len(series['total'])} weeks, backtest {backtest}")
    print(f"{'engine':<44} {'s':>8} {'ms/series':>10} {'total rel. MAE':>15} {'median':>8}")
    for r in rows:
        total = "-" if r["total"] is None else f"{r['total']:.3f}"
        median = "-" if r["median"] is None else f"{r['median']:.3f}"
        warm = "" if r["warm_up"] is None else f" (+{r['warm_up']:.2f} s warm-up)"
        print(
            f"{r['engine']:<44} {r['seconds']:>8.2f} {r['ms_per_series']:>10.1f} "
            f"{total:>15} {median:>8}{warm}"
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="builtin,200,cdnow")
    parser.add_argument("--backtest", type=int, default=8)
    parser.add_argument("--statsforecast-python", help="a Python with statsforecast")
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-engines-"))
    work.mkdir(parents=True, exist_ok=True)
    python = statsforecast_python(work, args.statsforecast_python)
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cpus, OMP_NUM_THREADS=1")
    results = {}
    for label in args.sets.split(","):
        if label == "cdnow":
            series = cdnow_weekly()
        else:
            n = 22 if label == "builtin" else int(label)
            series = build_series(4000, 42, "W", n, work)
        results[label] = run_set(label, series, args.backtest, python)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
