"""Benchmark SON's frequent itemsets (inline runner) against mlxtend's fpgrowth.

Each case (a data set, a minimum support and a largest itemset size) runs in a fresh
child process, so that its peak memory (``ru_maxrss`` of that child and its own children)
and its wall time are its own; ``--timeout`` and ``--max-gb`` (``RLIMIT_AS``) bound it. Two engines:

* ``son``: :func:`models.itemsets_stage.find_frequent_itemsets` on the inline runner, as
  the product runs it standalone (the co-occurrence job first, for the frequent items
  and pairs, then SON's two passes). Reported: seconds, peak memory, pass-1 chunks and
  the candidates pass 2 counted.
* ``mlxtend``: ``fpgrowth`` on a boolean one-hot DataFrame (``pd.crosstab``), the
  reference. Every itemset and count of SON is checked against it (count = support x N,
  rounded).

``--repo PATH`` runs another checkout's code (e.g. ``git archive HEAD | tar -x -C /tmp/old``)
for a before/after comparison; the candidates are then whatever that code reports.

Data sets (``--datasets``):

* ``supermarket``: the real New Zealand supermarket baskets (4,627 baskets, 122 items).
* ``dense``: 200 baskets of 22 distinct items drawn from 30 (seed 7), at support 0.5.
* ``remainder``: 2,000 baskets of 5 items of 100, then 25 baskets of 25 items of 100 at
  the end of the file, at support 0.01. With ``--chunk-baskets 100`` the code before
  issue 15 mined those 25 baskets as one chunk at min count 1 (every subset: 25 x 2^25).
* ``sparse``: an Instacart-like log (the Instacart sample is not here): 15,183 baskets,
  sizes 1 + exponential (mean 9, at most 80), items Zipf-distributed over 8,000, and 30
  % of the baskets hold one of 30 bundles of 3-6 popular items (seed 7); at supports
  0.01, 0.005 and 0.002.
* ``groceries``: a ``basket_id,item`` CSV given with ``--groceries`` (e.g. arules'
  Groceries, exported from Debian's r-cran-arules with pyreadr; never committed).

Run from the repository root::

    python benchmarks/bench_itemsets.py
    python benchmarks/bench_itemsets.py --datasets supermarket --supports 0.05 0.02 --sizes 0
    python benchmarks/bench_itemsets.py --repo /tmp/old --timeout 120 --max-gb 4
"""

import argparse
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUPERMARKET = Path("/work/shared/datasets/supermarket/supermarket_baskets.csv")
CASES = {
    "supermarket": (["0.05", "0.02"], [4, 0]),
    "dense": (["0.5"], [0]),
    "remainder": (["0.01"], [0]),
    "sparse": (["0.01", "0.005", "0.002"], [4, 0]),
    "groceries": (["0.01", "0.005", "0.002"], [4, 0]),
}


def write_dense(path, seed=7):
    """200 baskets of 22 distinct items of 30."""
    rng = random.Random(seed)
    items = [f"i{k:02d}" for k in range(30)]
    with open(path, "w", encoding="utf-8") as f:
        f.write("basket_id,item\n")
        for b in range(200):
            for item in sorted(rng.sample(items, 22)):
                f.write(f"d{b:03d},{item}\n")


def write_remainder(path, seed=7):
    """2,000 baskets of 5 items of 100, then 25 baskets of 25 items of 100 at the end."""
    rng = random.Random(seed)
    items = [f"i{k:03d}" for k in range(100)]
    with open(path, "w", encoding="utf-8") as f:
        f.write("basket_id,item\n")
        for b in range(2000):
            for item in sorted(rng.sample(items, 5)):
                f.write(f"s{b:04d},{item}\n")
        for b in range(25):
            for item in sorted(rng.sample(items, 25)):
                f.write(f"z{b:02d},{item}\n")


def write_sparse(path, seed=7):
    """15,183 baskets like a grocery order log: Zipf items, geometric sizes, bundles."""
    rng = random.Random(seed)
    items = [f"p{k:04d}" for k in range(8000)]
    weights = [1 / (k + 1) for k in range(len(items))]
    cumulative = list(itertools.accumulate(weights))
    bundles = [rng.sample(items[:400], rng.randint(3, 6)) for _ in range(30)]
    with open(path, "w", encoding="utf-8") as f:
        f.write("basket_id,item\n")
        for b in range(15_183):
            size = min(80, 1 + int(rng.expovariate(1 / 9)))
            basket = set(rng.choices(items, cum_weights=cumulative, k=size))
            if rng.random() < 0.3:
                basket.update(rng.choice(bundles))
            for item in sorted(basket):
                f.write(f"o{b:05d},{item}\n")


def dataset_path(name, work_dir, groceries):
    if name == "supermarket":
        return str(SUPERMARKET)
    if name == "groceries":
        if groceries is None:
            return None
        return groceries
    path = os.path.join(work_dir, f"{name}.csv")
    {"dense": write_dense, "remainder": write_remainder, "sparse": write_sparse}[name](path)
    return path


# -- in the child --------------------------------------------------------------------------


def run_son(path, support, max_size, chunk_baskets):
    from models.itemsets_stage import find_frequent_itemsets
    from mr_jobs.records import PRESETS

    start = time.perf_counter()
    itemsets, details = find_frequent_itemsets(
        [path],
        schema=PRESETS["baskets"],
        min_support=support,
        max_size=max_size or None,
        chunk_baskets=chunk_baskets or None,
        conf_paths=[],
    )
    seconds = time.perf_counter() - start
    found = {"\x1f".join(r["items"]): r["count"] for r in itemsets}
    return {
        "seconds": seconds,
        "itemsets": len(itemsets),
        "candidates": details["candidates"],
        "chunks": details.get("chunks"),
        "passes": details.get("seconds", {}),
        "baskets": details["baskets"],
        "found": found,
    }


def run_mlxtend(path, support, max_size, _chunk_baskets):
    import pandas as pd
    from mlxtend.frequent_patterns import fpgrowth

    start = time.perf_counter()
    lines = pd.read_csv(path, dtype=str)
    onehot = pd.crosstab(lines["basket_id"], lines["item"]).astype(bool)
    ref = fpgrowth(onehot, min_support=float(support), use_colnames=True, max_len=max_size or None)
    seconds = time.perf_counter() - start
    n = len(onehot)
    found = {
        "\x1f".join(sorted(s)): round(v * n)
        for s, v in zip(ref["itemsets"], ref["support"], strict=True)
    }
    return {"seconds": seconds, "itemsets": len(found), "baskets": n, "found": found}


def child_main(args):
    sys.path.insert(0, args.repo)
    if args.max_gb:
        limit = int(args.max_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    run = {"son": run_son, "mlxtend": run_mlxtend}[args.engine]
    result = run(args.path, args.support, args.max_size, args.chunk_baskets)
    peak = max(
        resource.getrusage(who).ru_maxrss
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    result["peak_mb"] = peak / 1024  # KiB on Linux
    json.dump(result, sys.stdout)


# -- in the parent -------------------------------------------------------------------------


def measure(engine, path, support, max_size, args):
    """One case in a child: its result, or why it failed, with seconds and peak MB."""
    cmd = [sys.executable, __file__, "--child", engine, "--path", path]
    cmd += ["--support", support, "--max-size", str(max_size), "--repo", args.repo]
    if args.max_gb:
        cmd += ["--max-gb", str(args.max_gb)]
    if args.chunk_baskets:
        cmd += ["--chunk-baskets", str(args.chunk_baskets)]
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=args.repo, text=True
    )
    try:
        out, err = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"failed": f"timeout after {args.timeout} s", "wall": args.timeout}
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        last = err.strip().splitlines()[-1:] or ["?"]
        return {"failed": f"exit {proc.returncode}: {last[0][:120]}", "wall": wall}
    result = json.loads(out)
    result["wall"] = wall
    return result


def compare(son, ref):
    if "found" not in son or "found" not in ref:
        return "n/a"
    if son["found"] == ref["found"]:
        return "exact"
    differ = sorted(set(son["found"].items()) ^ set(ref["found"].items()))[:2]
    return f"DIFFER {differ}"


def parent_main(args):
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-itemsets-") as work_dir:
        for name in args.datasets:
            path = dataset_path(name, work_dir, args.groceries)
            if path is None:
                print(f"{name}: skipped (no --groceries file)", flush=True)
                continue
            supports, sizes = CASES[name]
            for support in args.supports or supports:
                for max_size in sizes if args.sizes is None else args.sizes:
                    son = measure("son", path, support, max_size, args)
                    ref = {"failed": "not run"}
                    if "mlxtend" in args.engines:
                        ref = measure("mlxtend", path, support, max_size, args)
                    row = {
                        "dataset": name,
                        "support": support,
                        "max_size": max_size,
                        "son": {k: v for k, v in son.items() if k != "found"},
                        "mlxtend": {k: v for k, v in ref.items() if k != "found"},
                        "check": compare(son, ref),
                    }
                    rows.append(row)
                    print(format_row(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


def format_row(row):
    son, ref = row["son"], row["mlxtend"]
    head = f"{row['dataset']:<12} s={row['support']:<6} size<={row['max_size'] or 'all':<4}"
    if "failed" in son:
        ours = f"SON FAILED ({son['failed']})"
    else:
        ours = (
            f"SON {son['seconds']:7.2f} s, peak {son['peak_mb']:6.0f} MB, chunks "
            f"{son['chunks']}, candidates {son['candidates']:>7,}, itemsets {son['itemsets']:>7,}"
            f" ({', '.join(f'{k} {v:.1f}' for k, v in son['passes'].items())})"
        )
    if "failed" in ref:
        theirs = f"mlxtend FAILED ({ref['failed']})"
    else:
        ratio = (
            "" if "failed" in son else f" (SON / mlxtend {son['seconds'] / ref['seconds']:.1f}x)"
        )
        theirs = f"mlxtend fpgrowth {ref['seconds']:6.2f} s, peak {ref['peak_mb']:5.0f} MB{ratio}"
    return f"{head} {ours} | {theirs} | {row['check']}"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["supermarket", "dense", "remainder", "sparse"]
    )
    parser.add_argument("--supports", nargs="+", default=None, help="instead of the defaults")
    parser.add_argument("--sizes", nargs="+", type=int, default=None, help="0: no limit")
    parser.add_argument("--groceries", default=None, help="a basket_id,item CSV")
    parser.add_argument("--repo", default=str(REPO), help="the checkout whose code runs")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per case")
    parser.add_argument("--max-gb", type=float, default=None, help="RLIMIT_AS per case")
    parser.add_argument(
        "--engines", nargs="+", default=["son", "mlxtend"], choices=["son", "mlxtend"]
    )
    parser.add_argument("--chunk-baskets", type=int, default=0, help="SON's (0: its default)")
    parser.add_argument("--json", default=None, help="write the rows here too")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--path", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--support", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--max-size", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    options = parse_args()
    if options.child:
        options.engine = options.child
        child_main(options)
    else:
        parent_main(options)
