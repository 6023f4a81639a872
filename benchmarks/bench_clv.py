"""Benchmark the CLV stage (models/clv_stage.py) against lifetimes in one process, e.g. 1M/3M.

The RFM job's speed is ``bench_rfm.py``'s subject; this one times what comes after it, on
RFM rows of period ``D`` drawn directly (a BG/NBD-like story: a first purchase in the 730
days before the as-of date, a purchase rate ``Gamma(0.6, mean 0.03)`` per day, a drop-out
chance ``Beta(0.4, 2.0)`` after each purchase (the x-th of the purchases in ``T`` is the last
before the drop-out), a lognormal mean value), written as two
``part-*`` files as the RFM stage publishes them.

Timed on the same rows, each in its own process (peak RSS of that process alone, from
``/proc/PID/status`` ``VmHWM``; the local runner's task processes are not counted):

* **this project**: :func:`models.clv_stage.run_clv_stage` with ``current_path`` and the
  local runner (two task processes): the statistics job, the BG/NBD fit on the distinct
  triples, the seeded sample of at most 500,000 customers and the Gamma-Gamma fit on it, the
  tiers, the map-only scoring job, ``customers.csv``; the steps' seconds come from the
  manifest's ``details.seconds``.
* **lifetimes**: the rows read with pandas, ``BetaGeoFitter().fit`` on every customer,
  ``GammaGammaFitter().fit`` on the repeat buyers, then P(alive), the expected purchases in
  365 days and ``customer_lifetime_value(time=12, freq="D")`` of every customer.

Goals (issue 17): the fit's seconds flat in customers (they grow with the distinct
triples); scoring at least as fast per customer as lifetimes' in-memory prediction.

Run from the repository root::

    python benchmarks/bench_clv.py                            # 1M and 3M customers
    python benchmarks/bench_clv.py --customers 100000 --json /tmp/clv.json
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_scale import read_status  # noqa: E402

AS_OF = "2024-12-31"


def draw_rows(customers, seed, directory, parts=2):
    """Write ``customers`` RFM rows of period ``D`` as ``parts`` part files."""
    import numpy as np

    rng = np.random.default_rng(seed)
    T = rng.integers(0, 731, customers)
    rate = rng.gamma(0.6, 0.05, customers)
    drop = rng.beta(0.4, 2.0, customers)
    # while alive, purchases at the rate; after each, drop out with the chance: x is the
    # purchases up to the drop or to T, t_x the x-th of the n arrival times, uniform in T
    possible = rng.poisson(rate * T)
    x = np.minimum(possible, rng.geometric(np.clip(drop, 1e-6, 1.0)))
    order = rng.beta(np.maximum(x, 1), possible - x + 1)
    t_x = np.where(x > 0, np.floor(T * order), 0)
    t_x = np.minimum(t_x, T).astype(int)
    value = np.where(x > 0, np.round(rng.lognormal(3.0, 0.6, customers), 2), 0.0)
    directory.mkdir(parents=True, exist_ok=True)
    per = -(-customers // parts)
    for part in range(parts):
        with open(directory / f"part-{part:05d}", "w") as f:
            for i in range(part * per, min(customers, (part + 1) * per)):
                row = {
                    "customer_id": f"C{i:08d}",
                    "as_of": AS_OF,
                    "period": "D",
                    "frequency": int(x[i]),
                    "recency": int(t_x[i]),
                    "T": int(T[i]),
                    "monetary_value": float(value[i]),
                }
                f.write(json.dumps(row, separators=(",", ":")) + "\n")
    (directory / "_SUCCESS").write_text("")


def worker_ours(rows, out):
    """The stage on the rows; prints its timings."""
    from models.clv_stage import run_clv_stage
    from mr_jobs.records import PRESETS

    started = time.perf_counter()
    manifest = run_clv_stage(
        [str(rows)],
        str(out),
        schema=PRESETS["canonical"],
        current_path=str(rows),
        runner="local",
        conf_paths=[],
        overwrite=True,
    )
    details = manifest["details"]
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "steps": details["seconds"],
                "distinct_triples": details["distinct_triples"],
                "bgnbd": details["bgnbd"]["parameters"],
                "clv_total": details["clv_total"],
            }
        )
    )


def worker_lifetimes(rows):
    """lifetimes on the same rows, in memory; prints its timings and peak RSS."""
    import resource

    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    started = time.perf_counter()
    frame = pd.concat(pd.read_json(p, lines=True) for p in sorted(rows.glob("part-*")))
    read = time.perf_counter()
    bgf = BetaGeoFitter().fit(frame["frequency"], frame["recency"], frame["T"])
    repeat = frame[(frame["frequency"] > 0) & (frame["monetary_value"] > 0)]
    ggf = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    fitted = time.perf_counter()
    x, t_x, T, m = (frame[c] for c in ("frequency", "recency", "T", "monetary_value"))
    bgf.conditional_probability_alive(x, t_x, T)
    bgf.conditional_expected_number_of_purchases_up_to_time(365, x, t_x, T)
    ggf.customer_lifetime_value(bgf, x, t_x, T, m, time=12, discount_rate=0.01, freq="D")
    scored = time.perf_counter()
    print(
        json.dumps(
            {
                "seconds": scored - started,
                "steps": {"read": read - started, "fit": fitted - read, "score": scored - fitted},
                "bgnbd": {k: float(v) for k, v in bgf.params_.items()},
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def run_worker(args, poll=0.2):
    """Run this script as a worker; return its JSON and its peak RSS (MB)."""
    command = [sys.executable, __file__, "--worker", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        status = read_status(process.pid)
        if status:
            peak = max(peak, status[1])
        time.sleep(poll)
    out = process.stdout.read().decode()
    if process.returncode:
        raise SystemExit(f"worker {args[0]} failed with exit {process.returncode}")
    return json.loads(out.strip().splitlines()[-1]), peak / 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--customers", default="1000000,3000000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir")
    parser.add_argument("--json")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        if args.worker[0] == "ours":
            return worker_ours(Path(args.worker[1]), Path(args.worker[2]))
        return worker_lifetimes(Path(args.worker[1]))
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-clv-"))
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cpus; work dir {work}", flush=True)
    results = []
    for n in [int(c) for c in args.customers.split(",")]:
        rows = work / f"rows-{n}"
        if not (rows / "_SUCCESS").exists():
            started = time.perf_counter()
            draw_rows(n, args.seed, rows)
            print(f"{n:,} customers: rows drawn in {time.perf_counter() - started:.1f} s")
        ours, ours_peak = run_worker(["ours", str(rows), str(work / f"clv-{n}")])
        theirs, their_peak = run_worker(["lifetimes", str(rows)])
        result = {"customers": n, "ours": ours, "ours_peak_mb": ours_peak, "lifetimes": theirs}
        result["lifetimes_peak_mb"] = max(their_peak, theirs["peak_mb"])
        results.append(result)
        print_result(result, flush=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": platform.platform(), "results": results}, indent=2)
        )
    return 0


def print_result(r, flush=True):
    o, t = r["ours"], r["lifetimes"]
    fit = o["steps"]["bgnbd_fit"] + o["steps"]["gamma_gamma_fit"]
    score = o["steps"]["scores"]
    print(
        f"{r['customers']:,} customers ({o['distinct_triples']:,} distinct triples)\n"
        f"  this project: {o['seconds']:.1f} s in all, fit {fit:.2f} s (BG/NBD "
        f"{o['steps']['bgnbd_fit']:.2f} s), finite-expectation check "
        f"{o['steps'].get('bgnbd_check', 0.0):.2f} s, "
        f"statistics job {o['steps']['statistics']:.1f} s, "
        f"scoring job {score:.1f} s, customers.csv {o['steps']['customers_csv']:.1f} s; "
        f"driver peak {r['ours_peak_mb']:.0f} MB\n"
        f"  lifetimes:    {t['seconds']:.1f} s in all, read {t['steps']['read']:.1f} s, fit "
        f"{t['steps']['fit']:.1f} s, score {t['steps']['score']:.1f} s; peak "
        f"{r['lifetimes_peak_mb']:.0f} MB\n"
        f"  ratios: fit {t['steps']['fit'] / fit:.1f}x faster, scoring "
        f"{t['steps']['score'] / score:.2f}x lifetimes' speed per customer; r "
        f"{o['bgnbd']['r']:.4f} vs {t['bgnbd']['r']:.4f}",
        flush=flush,
    )


if __name__ == "__main__":
    sys.exit(main())
