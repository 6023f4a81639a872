"""Benchmark: distributed K-Means (one MapReduce run per Lloyd iteration) against scikit-learn.

Datasets:

- ``cdnow``: the RFM rows of the real CDNOW log (23,570 customers), computed by the RFM job;
- ``synthetic``: ``--customers`` RFM rows (default 2,000,000) drawn from a planted mixture
  of five behavioural groups, written as JSON-lines files of at most a million rows, as
  the RFM stage publishes them (or ``--parts`` files).

For each, with the ``--runner`` (default ``local``, the repository's ``mrjob.conf``: two
cores): the features and statistics passes, every Lloyd iteration (one job each, seconds
from the fit's history), the labelling pass and the whole fit; per-iteration throughput is
points / iteration seconds. A job on a one-point file measures the runner's fixed cost per
iteration, and the marginal throughput is points / (iteration seconds - fixed cost).

Reference, in the same run and on the same standardised features:
``sklearn.cluster.KMeans(n_clusters=k, random_state=0)`` with ``n_init=10`` (the quality
reference: our inertia must be within 1%) and ``n_init=1`` (time per iteration = fit time /
``n_iter_``). ``OMP_NUM_THREADS=1`` is set before numpy is imported, as the project's
benchmarks do on these 2-core machines.

    python benchmarks/bench_kmeans.py                    # both datasets, k=5
    python benchmarks/bench_kmeans.py --customers 200000 --skip-cdnow --repeat 1
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models.job_runner import run_job  # noqa: E402
from models.kmeans import fit_kmeans, label_customers, prepared_features  # noqa: E402
from mr_jobs.kmeans import MRKMeansIteration, write_centroids  # noqa: E402
from mr_jobs.points import format_point, read_points  # noqa: E402

CDNOW = REPO.parent / "shared" / "datasets" / "cdnow" / "CDNOW_master.txt"
MRJOB_CONF = str(REPO / "mrjob.conf")

# planted groups: share, mean recency days, mean orders, mean order value
_GROUPS = (
    (0.05, 30, 40.0, 80.0),
    (0.20, 60, 10.0, 45.0),
    (0.35, 200, 3.0, 30.0),
    (0.25, 500, 1.5, 25.0),
    (0.15, 120, 6.0, 15.0),
)


def write_synthetic(directory, customers, parts, seed=0):
    """``customers`` RFM-like rows from the planted mixture, in ``parts`` files."""
    rng = np.random.default_rng(seed)
    shares = np.array([g[0] for g in _GROUPS])
    group = rng.choice(len(_GROUPS), size=customers, p=shares / shares.sum())
    rec_mean = np.array([g[1] for g in _GROUPS])[group]
    ord_mean = np.array([g[2] for g in _GROUPS])[group]
    aov_mean = np.array([g[3] for g in _GROUPS])[group]
    recency = np.minimum(rng.exponential(rec_mean), 729).astype(np.int64)
    orders = 1 + rng.poisson(ord_mean - 1)
    total = np.round(orders * aov_mean * rng.lognormal(0, 0.4, customers), 2)
    paths = []
    for p, chunk in enumerate(np.array_split(np.arange(customers), parts)):
        path = Path(directory) / f"part-{p:05d}"
        with open(path, "w") as f:
            f.writelines(
                f'{{"customer_id": "S{i:08d}", "recency_days": {r}, "orders": {o}, '
                f'"total_value": {v!r}}}\n'
                for i, r, o, v in zip(
                    chunk.tolist(),
                    recency[chunk].tolist(),
                    orders[chunk].tolist(),
                    total[chunk].tolist(),
                    strict=True,
                )
            )
        paths.append(str(path))
    return paths


def cdnow_rows(directory):
    from models.rfm_stage import run_rfm_stage
    from mr_jobs.records import PRESETS

    out = Path(directory) / "cdnow-rfm"
    run_rfm_stage([str(CDNOW)], str(out), schema=PRESETS["cdnow"], conf_paths=[])
    return sorted(str(p) for p in out.glob("part-*"))


def fixed_iteration_cost(runner, conf_paths, directory, repeat):
    """Seconds of an iteration job on a one-point file: the runner's fixed cost."""
    point = Path(directory) / "one-point"
    point.write_text(format_point('"x"', [0.0, 0.0, 0.0]) + "\n")
    centroids = Path(directory) / "one-centroid.json"
    write_centroids(centroids, [0.0] * 3, [1.0] * 3, [[0.0] * 3], far=1)
    times = []
    for _ in range(repeat):
        with run_job(
            MRKMeansIteration,
            [str(point)],
            ["--centroids", str(centroids)],
            runner=runner,
            conf_paths=conf_paths,
        ) as run:
            list(run.rows())
            times.append(run.seconds)
    return min(times)


def bench(name, inputs, k, runner, conf_paths, repeat, fixed):
    from sklearn.cluster import KMeans

    best = None
    for _ in range(repeat):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with prepared_features(
                inputs, runner=runner, conf_paths=conf_paths, distinct_limit=k
            ) as data:
                prepared = time.perf_counter() - started
                fit = fit_kmeans(data, k, seed=0)
                labels, label_seconds = label_customers(data, fit)
                total = time.perf_counter() - started
                z = data.standardise(np.vstack([read_points(p, 3)[1] for p in data.parts]))
        run = {
            "prepare_s": prepared,
            "features_s": data.seconds["features"],
            "stats_s": data.seconds["stats"],
            "iteration_s": [h["seconds"] for h in fit.history],
            "label_s": label_seconds,
            "total_s": total,
            "fit_s": fit.seconds,
            "iterations": fit.n_iter,
            "inertia": fit.inertia,
        }
        if best is None or run["total_s"] < best["total_s"]:
            best = run
    n = data.count
    assert len(labels) == n
    sk = {}
    for n_init in (10, 1):
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            model = KMeans(n_clusters=k, n_init=n_init, random_state=0).fit(z)
            times.append(time.perf_counter() - t)
        sk[n_init] = {"fit_s": min(times), "n_iter": int(model.n_iter_), "inertia": model.inertia_}
    per_iter = min(best["iteration_s"])
    result = {
        "dataset": name,
        "points": n,
        "k": k,
        "runner": runner,
        **best,
        "iteration_best_s": per_iter,
        "points_per_s": n / per_iter,
        "fixed_iteration_s": fixed,
        # undefined when the iteration is all fixed cost (small data)
        "marginal_points_per_s": n / (per_iter - fixed) if per_iter > 1.2 * fixed else None,
        "sklearn_n_init10_s": sk[10]["fit_s"],
        "sklearn_n_init1_s": sk[1]["fit_s"],
        "sklearn_iter_s": sk[1]["fit_s"] / max(sk[1]["n_iter"], 1),
        "sklearn_inertia": sk[10]["inertia"],
        "inertia_rel_diff": best["inertia"] / sk[10]["inertia"] - 1,
    }
    result["ratio_total_vs_sklearn10"] = best["total_s"] / sk[10]["fit_s"]
    result["ratio_iteration_vs_sklearn"] = per_iter / result["sklearn_iter_s"]
    return result


def report(r):
    print(f"\n== {r['dataset']}: {r['points']:,} points, k={r['k']}, runner {r['runner']}")
    print(
        f"  prepare (features {r['features_s']:.2f} s + stats {r['stats_s']:.2f} s): "
        f"{r['prepare_s']:.2f} s"
    )
    iters = ", ".join(f"{s:.2f}" for s in r["iteration_s"])
    print(f"  Lloyd iterations ({r['iterations']} + final assignment): {iters} s")
    marginal = r["marginal_points_per_s"]
    print(
        f"  best iteration {r['iteration_best_s']:.2f} s = {r['points_per_s']:,.0f} points/s; "
        f"runner fixed cost {r['fixed_iteration_s']:.2f} s -> marginal "
        + (f"{marginal:,.0f} points/s" if marginal else "n/a (mostly fixed cost)")
    )
    print(f"  labels {r['label_s']:.2f} s; whole fit {r['total_s']:.2f} s")
    print(
        f"  sklearn n_init=10 {r['sklearn_n_init10_s']:.2f} s, n_init=1 "
        f"{r['sklearn_n_init1_s']:.2f} s ({r['sklearn_iter_s'] * 1000:.1f} ms/iteration)"
    )
    print(
        f"  ratios: total / sklearn(n_init=10) {r['ratio_total_vs_sklearn10']:.1f}x, "
        f"iteration / sklearn iteration {r['ratio_iteration_vs_sklearn']:.0f}x; inertia "
        f"{r['inertia']:,.2f} vs {r['sklearn_inertia']:,.2f} ({r['inertia_rel_diff']:+.4%})"
    )
    ok = abs(r["inertia_rel_diff"]) <= 0.01
    print(f"  inertia within 1% of sklearn: {'yes' if ok else 'NO'}")
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2_000_000)
    parser.add_argument(
        "--parts",
        type=int,
        help="synthetic files, one map task each (default: one per million rows, as the "
        "RFM stage writes them)",
    )
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--runner", default="local", choices=["inline", "local"])
    parser.add_argument("--repeat", type=int, default=2, help="runs per timing; best kept")
    parser.add_argument("--skip-cdnow", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    conf_paths = [MRJOB_CONF] if args.runner == "local" else []
    tmp = tempfile.mkdtemp(prefix="bench-kmeans-")
    results = []
    try:
        print(f"load average at start: {os.getloadavg()}")
        fixed = fixed_iteration_cost(args.runner, conf_paths, tmp, args.repeat)
        print(f"fixed cost of an iteration job ({args.runner}): {fixed:.2f} s")
        if not args.skip_cdnow:
            if not CDNOW.exists():
                parser.error(f"no CDNOW log at {CDNOW}")
            inputs = cdnow_rows(tmp)
            for runner, conf in (("inline", []), (args.runner, conf_paths)):
                if runner == "inline" and args.runner == "inline" and results:
                    continue
                f = fixed if runner == args.runner else 0.0
                results.append(bench("cdnow", inputs, args.k, runner, conf, args.repeat, f))
        if not args.skip_synthetic:
            t = time.perf_counter()
            parts = args.parts or max(1, -(-args.customers // 1_000_000))
            inputs = write_synthetic(tmp, args.customers, parts)
            print(
                f"wrote {args.customers:,} synthetic rows in {parts} file(s) in "
                f"{time.perf_counter() - t:.1f} s"
            )
            results.append(
                bench("synthetic", inputs, args.k, args.runner, conf_paths, args.repeat, fixed)
            )
        ok = all([report(r) for r in results])
        print(f"\nload average at end: {os.getloadavg()}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
