"""Benchmark: exact RFM thresholds by MapReduce against scoring every customer in the driver.

Input: ``--customers`` generated RFM rows (default 1,000,000: recency 0..730 days, orders
1 + geometric, total value in cents from a log-normal, so every column has heavy ties),
written as JSON-lines ``part-*`` files of at most ``--rows-per-part`` rows, as the RFM
stage publishes them.

Engines, each in a fresh process so that its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the driver only: the local runner's tasks
are child processes) is its own:

- ``thresholds``: :func:`models.rfm_thresholds.exact_thresholds` with ``--runner``
  (default ``local``, the repository's ``mrjob.conf``);
- ``driver``: what the segments stage does today: every row decoded in the driver
  (``json.loads`` per line), a DataFrame, :func:`models.rfm_scores.quintile_scores` of
  the three columns (timed also alone, as ``quintile_scores``).

The benchmark checks that the thresholds reproduce the driver's scores before printing.

    python benchmarks/bench_rfm_thresholds.py
    python benchmarks/bench_rfm_thresholds.py --customers 100000 --runner inline
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MRJOB_CONF = str(REPO / "mrjob.conf")
COLUMNS = (("recency_days", False), ("orders", True), ("total_value", True))


def write_rows(directory, customers, rows_per_part, seed=0):
    """Write generated RFM rows as ``part-*`` JSON lines; return the paths."""
    rng = np.random.default_rng(seed)
    recency = rng.integers(0, 731, customers)
    orders = rng.geometric(0.35, customers)  # >= 1
    cents = np.round(np.exp(rng.normal(3.5, 1.2, customers)) * orders * 100).astype(np.int64)
    recency, orders, value = recency.tolist(), orders.tolist(), (cents / 100).tolist()
    paths = []
    for index, start in enumerate(range(0, customers, rows_per_part)):
        path = Path(directory) / f"part-{index:05d}"
        stop = min(start + rows_per_part, customers)
        with open(path, "w") as f:
            for i in range(start, stop):
                f.write(
                    f'{{"customer_id": "C{i:08d}", "recency_days": {recency[i]}, '
                    f'"orders": {orders[i]}, "total_value": {value[i]!r}}}\n'
                )
        paths.append(str(path))
    return paths


def peak_mb():
    """This process's peak resident memory in MB (Linux reports ru_maxrss in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def engine_thresholds(paths, runner):
    from models.rfm_thresholds import exact_thresholds

    conf = [MRJOB_CONF] if os.path.exists(MRJOB_CONF) else []
    started = time.perf_counter()
    found = exact_thresholds(paths, runner=runner, conf_paths=conf)
    return {
        "seconds": time.perf_counter() - started,
        "passes": max(entry["passes"] for entry in found.values()),
        "thresholds": {dim: entry["thresholds"] for dim, entry in found.items()},
    }


def engine_driver(paths):
    import pandas as pd

    from models.rfm_scores import quintile_scores

    started = time.perf_counter()
    rows = [json.loads(line) for path in paths for line in open(path)]
    df = pd.DataFrame(rows)
    del rows
    scoring = time.perf_counter()
    scores = {dim: quintile_scores(df[dim], higher) for dim, higher in COLUMNS}
    done = time.perf_counter()
    # the thresholds these scores imply, to check the other engine against
    from models.rfm_thresholds import wanted_ranks

    thresholds = {}
    for dim, higher in COLUMNS:
        a = np.sort(df[dim].to_numpy())
        thresholds[dim] = [None if r is None else a[r].item() for r in wanted_ranks(len(a), higher)]
    return {
        "seconds": done - started,
        "quintile_scores_seconds": done - scoring,
        "thresholds": thresholds,
        "score_counts": {
            dim: np.bincount(s, minlength=6)[1:].tolist() for dim, s in scores.items()
        },
    }


def run_child(engine, paths, runner):
    """Run one engine in a fresh interpreter; return its result with ``peak_mb``."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", engine, "--runner", runner, *paths],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--rows-per-part", type=int, default=500_000)
    parser.add_argument("--runner", default="local")
    parser.add_argument("--json", help="save the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.child == "thresholds":
            result = engine_thresholds(args.paths, args.runner)
        else:
            result = engine_driver(args.paths)
        result["peak_mb"] = peak_mb()
        print(json.dumps(result))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-rfm-thresholds-") as tmp:
        started = time.perf_counter()
        paths = write_rows(tmp, args.customers, args.rows_per_part)
        size = sum(os.path.getsize(p) for p in paths)
        print(
            f"{args.customers:,} rows in {len(paths)} part(s), {size / 1e6:.0f} MB, "
            f"written in {time.perf_counter() - started:.1f} s"
        )
        driver = run_child("driver", paths, args.runner)
        thresholds = run_child("thresholds", paths, args.runner)
    if thresholds["thresholds"] != driver["thresholds"]:
        raise SystemExit(f"thresholds differ: {thresholds['thresholds']} != {driver['thresholds']}")
    print(f"thresholds (checked equal): {thresholds['thresholds']}")
    print(f"scores 1..5 per column (driver): {driver['score_counts']}")
    print(
        f"driver (json.loads + DataFrame + quintile_scores): {driver['seconds']:.1f} s "
        f"(quintile_scores alone {driver['quintile_scores_seconds']:.2f} s), "
        f"peak {driver['peak_mb']:.0f} MB"
    )
    print(
        f"exact_thresholds ({args.runner}, {thresholds['passes']} passes): "
        f"{thresholds['seconds']:.1f} s, peak {thresholds['peak_mb']:.0f} MB"
    )
    print(
        f"ratio thresholds / driver: {thresholds['seconds'] / driver['seconds']:.2f} x time, "
        f"{thresholds['peak_mb'] / driver['peak_mb']:.2f} x peak memory"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "customers": args.customers,
                    "parts": len(paths),
                    "runner": args.runner,
                    "driver": driver,
                    "thresholds": thresholds,
                    "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
