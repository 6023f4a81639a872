"""Benchmark churn training and scoring (models/churn.py) on synthetic RFM rows, e.g. 1M.

The RFM job's own speed is ``bench_rfm.py``'s subject; this one times what comes after it,
on rows with the RFM job's columns, drawn directly (building a 1M-customer log and running
the job would time the job again). Each customer follows a Pareto/NBD-like story: a first
purchase in the 270 days before the cutoff, a purchase rate ``Gamma(0.8, mean 1/30)`` per
day, an exponential lifetime (mean 240 days) after which they never buy; purchase days up to
the cutoff are ``1 + Poisson(rate x active days)``, the last one the maximum of uniform
draws over the active span; orders add ``Poisson(0.15 x purchase days)``; a lognormal mean
order value per customer. The label is "no purchase in the 180 days after the cutoff"
(``1 - exp(-rate x days alive in the horizon)`` is the chance of buying).

Timed, each on the same rows:

* ``fit``: :func:`models.churn.fit_churn_model` (stratified 75/25 split, 5-fold CV of the
  logistic regression and of the gradient-boosted trees, the calibrated fit of the winner,
  the held-out report); its parts ``cv_logistic_regression``, ``cv_hist_gradient_boosting``
  and ``calibrated_fit`` come from :attr:`ChurnModel.timings`.
* ``score``: :func:`models.churn.score_customers` of every customer without drivers
  (probability, tier, value at risk), and ``score+drivers`` with the top 3 drivers (one
  extra prediction per feature and the per-customer lists).
* ``early_warning``: :func:`models.churn.early_warning` on the scored rows.
* ``save``/``load``: the skops file.

Reference, in the same run: plain scikit-learn, the chosen candidate (the same estimator
and parameters, from :func:`models.churn._candidate`) fitted once on the same training
part (the same stratified split) and its ``predict_proba`` on every customer. The ratios
``fit / reference fit`` and ``score / reference predict_proba`` are the price of what the
product adds: the selection by cross-validation of two candidates, the calibration, the
held-out report, and the tiers and values at risk.

``OMP_NUM_THREADS=1`` is set before numpy loads (one thread for BLAS and the trees), so
the numbers are single-core.

Run from the repository root::

    python benchmarks/bench_churn.py                          # 1M customers
    python benchmarks/bench_churn.py --customers 100000 --json /tmp/churn.json
"""

import os

# Before numpy/pandas/scikit-learn are imported: one BLAS/OpenMP thread, for stable numbers.
os.environ["OMP_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from models.churn import (  # noqa: E402
    _candidate,
    early_warning,
    feature_matrix,
    fit_churn_model,
    load_model,
    save_model,
    score_customers,
)

CUTOFF_WINDOW_DAYS = 270
HORIZON_DAYS = 180
MEAN_RATE_PER_DAY = 1 / 30
RATE_SHAPE = 0.8
MEAN_LIFETIME_DAYS = 240.0


def progress(message):
    """Print a progress message to stderr, flushed at once.

    Parameters
    ----------
    message : str
        The text to print.
    """
    print(message, file=sys.stderr, flush=True)


def synthetic_rows(n, seed):
    """RFM-like rows of ``n`` customers at a cutoff, with a churn label.

    Parameters
    ----------
    n : int
        Customers.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``recency_days``, ``tenure_days``, ``purchase_days``, ``orders``,
        ``total_value``, ``mean_order_value``, ``frequency``, ``monetary_value`` and
        ``churned`` (see the module docstring).
    """
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, CUTOFF_WINDOW_DAYS, n)  # days from the first purchase to cutoff
    rate = rng.gamma(RATE_SHAPE, MEAN_RATE_PER_DAY / RATE_SHAPE, n)
    lifetime = rng.exponential(MEAN_LIFETIME_DAYS, n)
    active = np.minimum(lifetime, tenure)  # days alive before the cutoff
    repeats = rng.poisson(rate * active)
    purchase_days = 1 + repeats
    # the last purchase: the latest of `repeats` uniform days over the active span
    last = np.where(repeats > 0, active * rng.random(n) ** (1.0 / np.maximum(repeats, 1)), 0.0)
    recency = tenure - np.floor(last).astype(np.int64)
    orders = purchase_days + rng.poisson(0.15 * purchase_days)
    mean_value = rng.lognormal(np.log(25.0), 0.6, n)
    total = np.round(orders * mean_value * rng.lognormal(0.0, 0.1, n), 2)
    alive_in_horizon = np.clip(lifetime - tenure, 0.0, HORIZON_DAYS)
    buys = rng.random(n) < 1.0 - np.exp(-rate * alive_in_horizon)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:07d}" for i in range(n)],
            "recency_days": recency,
            "tenure_days": tenure,
            "purchase_days": purchase_days,
            "orders": orders,
            "total_value": total,
            "mean_order_value": total / orders,
            "frequency": repeats,
            "monetary_value": np.where(repeats > 0, total / orders, 0.0),
            "churned": (~buys).astype(np.int64),
        }
    )


def timed(label, func):
    """Run ``func()`` once after a garbage collection; return (result, seconds)."""
    gc.collect()
    progress(f"{label} ...")
    started = time.perf_counter()
    result = func()
    seconds = time.perf_counter() - started
    progress(f"  {seconds:.2f} s")
    return result, seconds


def reference_times(rows, model, seed):
    """Seconds of a plain scikit-learn fit and ``predict_proba`` of the chosen candidate.

    Parameters
    ----------
    rows : pandas.DataFrame
        The benchmark rows, with ``churned``.
    model : models.churn.ChurnModel
        The product's fitted model: its ``chosen`` candidate and ``test_size`` are reused.
    seed : int

    Returns
    -------
    (float, float)
        Fit seconds (on the training part of the same split), predict seconds (every row).
    """
    from sklearn.model_selection import train_test_split

    x = feature_matrix(rows).to_numpy()
    y = rows["churned"].to_numpy()
    train, _test = train_test_split(
        np.arange(len(y)), test_size=model.test_size, stratify=y, random_state=seed
    )
    estimator = _candidate(model.chosen, seed)
    _, fit_seconds = timed(
        f"reference: scikit-learn {model.chosen} fit", lambda: estimator.fit(x[train], y[train])
    )
    _, predict_seconds = timed(
        "reference: scikit-learn predict_proba", lambda: estimator.predict_proba(x)
    )
    return fit_seconds, predict_seconds


def machine_info():
    """CPU count, Python, platform, package versions and the relevant environment.

    Returns
    -------
    dict
    """

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    names = ("crm-mapreduce", "scikit-learn", "skops", "pandas", "numpy")
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(affinity) if affinity is not None else None,
        "python": sys.version,
        "platform": platform.platform(),
        "packages": {name: version(name) for name in names},
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def _rate(n, seconds):
    rate = n / seconds if seconds else float("inf")
    if rate >= 1e6:
        return f"{rate / 1e6:.2f}M/s"
    if rate >= 1e4:
        return f"{rate / 1e3:.0f}k/s"
    return f"{rate / 1e3:.1f}k/s"


def format_table(n, rows):
    """A Markdown table of the timings.

    Parameters
    ----------
    n : int
        Customers.
    rows : list of (str, float or None, int or None)
        ``(measure, seconds, customers it covers)``; seconds ``None`` for a note row.

    Returns
    -------
    str
    """
    out = ["| measure | customers | seconds | customers/s |", "|---|---:|---:|---:|"]
    for measure, seconds, count in rows:
        count = n if count is None else count
        out.append(f"| {measure} | {count:,} | {seconds:.2f} | {_rate(count, seconds)} |")
    return "\n".join(out)


def parse_args(argv=None):
    """The command line.

    Parameters
    ----------
    argv : list of str, optional
        Defaults to ``sys.argv[1:]``.

    Returns
    -------
    argparse.Namespace
    """
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--customers", type=int, default=1_000_000, help="synthetic customers")
    parser.add_argument("--seed", type=int, default=42, help="data and model seed")
    parser.add_argument("--cv-folds", type=int, default=5, help="as fit_churn_model")
    parser.add_argument("--json", type=Path, default=None, help="write all measurements here")
    args = parser.parse_args(argv)
    if args.customers < 1000:
        parser.error(f"--customers={args.customers} should be >= 1000")
    if args.cv_folds < 2:
        parser.error(f"--cv-folds={args.cv_folds} should be >= 2")
    return args


def main(argv=None):
    """Draw the rows, time training, scoring, the early-warning list and persistence.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        The exit status.
    """
    args = parse_args(argv)
    info = machine_info()
    if info["loadavg_start"] and info["loadavg_start"][0] > 0.5:
        progress(f"note: load average {info['loadavg_start'][0]:.2f}: numbers may be noisy")
    n = args.customers
    rows, draw_seconds = timed(f"drawing {n:,} customers", lambda: synthetic_rows(n, args.seed))
    progress(f"  churn rate {rows['churned'].mean():.3f}")
    model, fit_seconds = timed(
        "fit_churn_model", lambda: fit_churn_model(rows, seed=args.seed, cv_folds=args.cv_folds)
    )
    current = rows.drop(columns="churned")
    scored, score_seconds = timed(
        "score_customers (no drivers)", lambda: score_customers(model, current, top_drivers=0)
    )
    scored, drivers_seconds = timed(
        "score_customers (top 3 drivers)", lambda: score_customers(model, current, top_drivers=3)
    )
    warning, warning_seconds = timed("early_warning", lambda: early_warning(scored))
    reference_fit, reference_predict = reference_times(rows, model, args.seed)
    with tempfile.TemporaryDirectory(prefix="bench_churn_") as directory:
        path = Path(directory) / "churn.skops"
        _, save_seconds = timed("save_model", lambda: save_model(model, path))
        size = path.stat().st_size
        _, load_seconds = timed("load_model", lambda: load_model(path))
    n_train = model.metrics["n_train"]
    table = [
        ("fit (all)", fit_seconds, None),
        *[(f"  {k}", v, n_train) for k, v in model.timings.items()],
        ("score", score_seconds, None),
        ("score+drivers", drivers_seconds, None),
        ("early_warning", warning_seconds, None),
        ("save", save_seconds, None),
        ("load", load_seconds, None),
        ("reference: scikit-learn fit of the chosen model", reference_fit, n_train),
        ("reference: scikit-learn predict_proba", reference_predict, None),
    ]
    info["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    packages = info["packages"]
    m = model.metrics
    cv = {k: round(float(np.mean(v)), 4) for k, v in model.cv_scores.items()}
    print(
        f"# cpus {info['cpu_count']}, python {platform.python_version()}, "
        f"scikit-learn {packages['scikit-learn']}, skops {packages['skops']}, "
        f"pandas {packages['pandas']}, numpy {packages['numpy']}, "
        f"OMP_NUM_THREADS={info['OMP_NUM_THREADS']}, "
        f"load {info['loadavg_start'][0]:.2f} -> {info['loadavg_end'][0]:.2f}"
    )
    print(
        f"# {n:,} synthetic customers (drawn in {draw_seconds:.1f} s), seed {args.seed}, "
        f"{args.cv_folds}-fold CV ROC-AUC {cv}, chosen {model.chosen}, "
        f"calibration {model.calibration}"
    )
    print(
        f"# held-out ({m['n_holdout']:,}): ROC-AUC {m['roc_auc']:.4f} (recency-only "
        f"{m['recency_only_roc_auc']:.4f}), PR-AUC {m['pr_auc']:.4f}, Brier {m['brier']:.4f}, "
        f"top-decile lift {m['top_decile_lift']:.3f}; early-warning list {len(warning):,}; "
        f"model file {size:,} bytes"
    )
    print(format_table(n, table))
    print(
        f"# ratios to plain scikit-learn: fit {fit_seconds / reference_fit:.2f}x, "
        f"score {score_seconds / reference_predict:.2f}x, "
        f"score+drivers {drivers_seconds / reference_predict:.2f}x"
    )
    if args.json:
        payload = {
            "machine": info,
            "args": sys.argv[1:] if argv is None else list(argv),
            "customers": n,
            "seconds": {measure.strip(): seconds for measure, seconds, _ in table},
            "metrics": m,
            "cv_scores": model.cv_scores,
            "chosen": model.chosen,
            "early_warning": len(warning),
            "model_bytes": size,
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
