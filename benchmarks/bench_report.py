"""Benchmark: building the report of output roots of growing size, against reading their
per-customer tables with pandas.

For each output root given (``crm-mr run`` outputs, e.g. of ``--customers 4000``, 100,000
and 1,000,000), in a fresh process each so that the peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own:

- ``report``: :func:`models.report.build_report` into a temporary file (imports included,
  as ``crm-mr report`` pays them): seconds, bytes, peak RSS;
- ``pandas``: the reference, what a report drawn from the per-customer tables would start
  with: ``pandas.read_csv`` of ``rfm_segments/customers.csv``, ``churn/scores.csv`` and
  ``clv/customers.csv`` (nothing drawn yet): seconds and peak RSS.

The report must not grow with the customers; the reference does.

    python benchmarks/bench_report.py /tmp/run4k /tmp/run100k /tmp/run1m
    python benchmarks/bench_report.py crm-output --json /tmp/report.json
"""

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PER_CUSTOMER_CSVS = ("rfm_segments/customers.csv", "churn/scores.csv", "clv/customers.csv")

_REPORT = """
import json, resource, sys, tempfile, time
start = time.perf_counter()
from models.report import build_report
with tempfile.TemporaryDirectory() as tmp:
    uri, size = build_report(sys.argv[1], tmp + "/report.html")
seconds = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "bytes": size, "rss_mb": rss}))
"""

_PANDAS = """
import json, os, resource, sys, time
start = time.perf_counter()
import pandas as pd
rows = 0
for name in sys.argv[2:]:
    path = os.path.join(sys.argv[1], name)
    if os.path.exists(path):
        rows += len(pd.read_csv(path))
seconds = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "rows": rows, "rss_mb": rss}))
"""


def _run(code, *args):
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO
    )
    if done.returncode:
        sys.exit(f"bench_report: failed on {args[0]}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _customers(root):
    manifest = Path(root) / "rfm" / "_manifest.json"
    if not manifest.exists():
        sys.exit(f"bench_report: {root} is not a crm-mr run output root (no rfm/_manifest.json)")
    return json.loads(manifest.read_text())["rows_written"]


def measure(root, repeats):
    """The fastest of ``repeats`` report builds and pandas reads of ``root``."""
    report = min((_run(_REPORT, root) for _ in range(repeats)), key=lambda r: r["seconds"])
    pandas = min(
        (_run(_PANDAS, root, *PER_CUSTOMER_CSVS) for _ in range(repeats)),
        key=lambda r: r["seconds"],
    )
    return {"root": str(root), "customers": _customers(root), "report": report, "pandas": pandas}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", help="crm-mr run output roots (local)")
    parser.add_argument("--repeats", type=int, default=3, help="runs each; the fastest counts")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, not {args.repeats}")
    results = [measure(root, args.repeats) for root in args.roots]
    print(f"Python {platform.python_version()}, fastest of {args.repeats} runs, fresh processes")
    print(
        f"{'customers':>10} {'report s':>9} {'MB':>6} {'RSS MB':>7} "
        f"{'pandas s':>9} {'RSS MB':>7} {'report/pandas':>14}"
    )
    for r in results:
        rep, pd_ = r["report"], r["pandas"]
        print(
            f"{r['customers']:>10,} {rep['seconds']:>9.2f} {rep['bytes'] / 1e6:>6.2f} "
            f"{rep['rss_mb']:>7.0f} {pd_['seconds']:>9.2f} {pd_['rss_mb']:>7.0f} "
            f"{rep['seconds'] / pd_['seconds']:>13.2f}x"
        )
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(
            f"growth from {first['customers']:,} to {last['customers']:,} customers: report "
            f"{last['report']['seconds'] / first['report']['seconds']:.2f}x time, "
            f"{last['report']['bytes'] / first['report']['bytes']:.2f}x size; pandas "
            f"{last['pandas']['seconds'] / first['pandas']['seconds']:.2f}x time"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
