"""Benchmark the co-occurrence job (local runner) against a Counter and mlxtend, in one run.

Every input is a file of basket lines. Each engine reads the same file in the same run:

* ``counter``: plain single-process Python. Lines are split at commas and grouped into
  baskets of distinct items (a dict of sets); then a :class:`collections.Counter` counts
  every item and every :func:`itertools.combinations` pair of each sorted basket. It counts
  all items and pairs, the job's step 1 does the same; the minimum support only filters.
* ``mlxtend``: the reference miner: ``read_csv`` (two columns), a dense one-hot matrix
  (``pd.factorize``), ``apriori(max_len=2)`` and ``association_rules`` (confidence), i.e.
  the frequent items and pairs and the single-item rules the job writes. Skipped, with the
  reason printed, when its candidate matrix would need more than ``--mlxtend-max-gb``.
* ``local``: :class:`mr_jobs.cooccurrence.MRItemCooccurrence` with the local runner through
  :func:`models.job_runner.run_job`, as the product runs it, with the product's
  ``mrjob.conf`` (``--no-mrjob-conf`` reads none). ``job`` is ``run.seconds`` (the
  runner's ``run()``), ``job+output`` adds reading every output row and the cleanup.

Before anything is timed as equal work, every job run's frequent item and pair counts
(and N, the distinct item and pair counters and the line counters) are checked against the
Counter's at the same minimum support, and mlxtend's against the Counter's too (its rules
against the job's).

Inputs (``--sizes``): ``supermarket`` is the real New Zealand supermarket file
(``basket_id,item``, 4,627 baskets; read by the job with ``--input-format baskets``); an
integer N is a log of about N orders (an order is a basket) written by the product's own
generator, :func:`models.synthetic.generate`, with ``dirty_rate=0`` (so the header is the
only line the job rejects and the Counter's plain split reads exactly what the job
accepts), read by the job as canonical order lines. It is built in ``--work-dir`` (reused
there) or a temp dir.

Run from the repository root::

    python benchmarks/bench_baskets.py                          # supermarket and ~1M baskets
    python benchmarks/bench_baskets.py --sizes supermarket 100000 --json /tmp/baskets.json
"""

import os

# Before numpy/pandas are imported: one BLAS/OpenMP thread, for stable numbers. The local
# runner's task processes inherit it.
os.environ["OMP_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from models import synthetic  # noqa: E402
from models.job_runner import run_job  # noqa: E402
from mr_jobs.cooccurrence import MRItemCooccurrence  # noqa: E402

SUPERMARKET = "supermarket"
SUPERMARKET_HEADER = "basket_id,item"
#: Lines per order of the generator's log (3.13 measured at seed 42, 1M orders): the
#: ``lines`` asked of :func:`models.synthetic.generate` for N orders.
SYNTHETIC_LINES_PER_ORDER = 3.13
ENGINES = ("counter", "mlxtend", "local")
REFERENCES = ("counter", "mlxtend")
GOAL_RATIO = 10.0
#: Below this many seconds for a first run, the default is 3 runs instead of 1.
SHORT_RUN_SECONDS = 5.0
#: Bytes per basket and candidate pair of mlxtend's dense apriori at peak:
#: ``X[:, combin]`` (2) and ``np.all`` of it (1).
MLXTEND_BYTES_PER_CELL = 3


def progress(message):
    """Print a progress message to stderr, flushed at once.

    Parameters
    ----------
    message : str
        The text to print.
    """
    print(message, file=sys.stderr, flush=True)


def default_supermarket_path():
    """``$CRM_DATASETS/supermarket/supermarket_baskets.csv`` or ``../shared/datasets/...``.

    Returns
    -------
    pathlib.Path
        The path (not checked for existence).
    """
    datasets = os.environ.get("CRM_DATASETS")
    base = Path(datasets) if datasets else REPO.parent / "shared" / "datasets"
    return base / "supermarket" / "supermarket_baskets.csv"


# -- inputs ------------------------------------------------------------------------------------


class BasketInput:
    """A basket file and how each engine reads it.

    Parameters
    ----------
    label : str
        ``"supermarket"`` or ``"synthetic ~N"``.
    path : pathlib.Path
        The file (a header line, then one line per item of a basket).
    basket_column, item_column : str
        Header names of the basket and item columns.
    job_args : list of str
        The job's input options for this layout.
    """

    def __init__(self, label, path, basket_column, item_column, job_args):
        self.label = label
        self.path = path
        self.basket_column = basket_column
        self.item_column = item_column
        self.job_args = job_args
        header = _first_line(path).split(",")
        self.basket_index = header.index(basket_column)
        self.item_index = header.index(item_column)


def _first_line(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.readline().rstrip("\r\n")


def supermarket_input(path):
    """The supermarket baskets (``basket_id,item``), read with ``--input-format baskets``.

    Parameters
    ----------
    path : pathlib.Path
        The CSV.

    Returns
    -------
    BasketInput
    """
    if _first_line(path) != SUPERMARKET_HEADER:
        raise ValueError(f"{path}: header {_first_line(path)!r}, want {SUPERMARKET_HEADER!r}")
    return BasketInput(SUPERMARKET, path, "basket_id", "item", ["--input-format", "baskets"])


def synthetic_input(n_orders, seed, work_dir):
    """Write (or reuse) a generator log of about ``n_orders`` orders in ``work_dir``.

    :func:`models.synthetic.generate` with ``lines = n_orders * 3.13`` (its lines per
    order), ``dirty_rate=0`` and ``seed``. A file whose truth JSON records the same
    parameters is reused.

    Parameters
    ----------
    n_orders : int
        Baskets wanted.
    seed : int
        The generator's seed.
    work_dir : pathlib.Path
        Where to write it.

    Returns
    -------
    BasketInput
    """
    lines = max(100, round(n_orders * SYNTHETIC_LINES_PER_ORDER))
    path = Path(work_dir) / f"synthetic_{n_orders}_seed{seed}.csv"
    truth_file = Path(synthetic.truth_path(path))
    want = {"lines": lines, "seed": seed, "dirty_rate": 0.0}
    truth = None
    if path.exists() and truth_file.exists():
        truth = json.loads(truth_file.read_text())
        if any(truth["parameters"].get(k) != v for k, v in want.items()):
            truth = None
        else:
            progress(f"reusing {path} ({truth['orders']:,} orders)")
    if truth is None:
        progress(f"generating about {n_orders:,} orders ({lines:,} lines) in {path} ...")
        started = time.perf_counter()
        truth = synthetic.generate(path, lines=lines, seed=seed, dirty_rate=0.0)
        progress(
            f"  {truth['orders']:,} orders, {truth['lines_total']:,} lines in "
            f"{time.perf_counter() - started:.1f} s"
        )
    if _first_line(path) != synthetic.HEADER:
        raise ValueError(f"{path}: header {_first_line(path)!r}, want {synthetic.HEADER!r}")
    return BasketInput(f"synthetic ~{_short(n_orders)}", path, "order_id", "item_id", [])


def _short(n):
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size and n % (size // 10) == 0:
            return f"{n / size:g}{unit}"
    return f"{n:,}"


# -- the engines -------------------------------------------------------------------------------


class Counts:
    """What the Counter reference computes: N, every item and pair count, lines read."""

    def __init__(self, baskets, items, pairs, lines):
        self.baskets = baskets
        self.items = items
        self.pairs = pairs
        self.lines = lines

    def frequent(self, min_support):
        """The frequent items and pairs, as the job and mlxtend compare: count / N >= s.

        Parameters
        ----------
        min_support : float

        Returns
        -------
        tuple of dict
            ``({item: count}, {(a, b): count})``.
        """
        n = self.baskets
        return (
            {i: c for i, c in self.items.items() if c / n >= min_support},
            {p: c for p, c in self.pairs.items() if c / n >= min_support},
        )


def count_with_counter(basket_input):
    """The Counter reference: read, group into baskets of distinct items, count.

    Parameters
    ----------
    basket_input : BasketInput

    Returns
    -------
    Counts
    """
    b, i = basket_input.basket_index, basket_input.item_index
    baskets = {}
    lines = 0
    with open(basket_input.path, encoding="utf-8", newline="") as fh:
        next(fh)  # the header
        for line in fh:
            lines += 1
            fields = line.rstrip("\r\n").split(",")
            basket = fields[b]
            items = baskets.get(basket)
            if items is None:
                baskets[basket] = {fields[i]}
            else:
                items.add(fields[i])
    item_counts = Counter()
    pair_counts = Counter()
    for items in baskets.values():
        item_counts.update(items)
        if len(items) > 1:
            pair_counts.update(itertools.combinations(sorted(items), 2))
    return Counts(len(baskets), item_counts, pair_counts, lines + 1)


def time_counter(basket_input):
    """Time :func:`count_with_counter`.

    Returns
    -------
    dict
        ``{"seconds": float, "counts": Counts}``.
    """
    gc.collect()
    started = time.perf_counter()
    counts = count_with_counter(basket_input)
    return {"seconds": time.perf_counter() - started, "counts": counts}


def mlxtend_estimate(counts, min_support):
    """Bytes mlxtend's dense apriori needs at peak, from the Counter's item counts.

    Parameters
    ----------
    counts : Counts
    min_support : float

    Returns
    -------
    tuple
        ``(bytes, frequent items, candidate pairs)``.
    """
    frequent = len(counts.frequent(min_support)[0])
    candidates = frequent * (frequent - 1) // 2
    cells = counts.baskets * (len(counts.items) + MLXTEND_BYTES_PER_CELL * candidates)
    return cells, frequent, candidates


def time_mlxtend(basket_input, min_support, min_confidence):
    """mlxtend from the file: read_csv, one-hot, apriori(max_len=2), association_rules.

    Parameters
    ----------
    basket_input : BasketInput
    min_support, min_confidence : float

    Returns
    -------
    dict
        ``seconds`` (all), ``read``, ``onehot``, ``apriori``, ``rules`` (seconds each),
        ``baskets``, ``items`` and ``pairs`` (``{item: count}``, ``{(a, b): count}``, counts
        as round(support * N)) and ``rules_set`` (``{(antecedent, consequent)}``).
    """
    from mlxtend.frequent_patterns import apriori, association_rules

    gc.collect()
    t0 = time.perf_counter()
    df = pd.read_csv(
        basket_input.path,
        usecols=[basket_input.basket_column, basket_input.item_column],
        dtype=str,
        keep_default_na=False,
    )
    t1 = time.perf_counter()
    rows, _ = pd.factorize(df[basket_input.basket_column])
    cols, names = pd.factorize(df[basket_input.item_column])
    del df
    dense = np.zeros((int(rows.max()) + 1 if rows.size else 0, len(names)), dtype=bool)
    dense[rows, cols] = True
    onehot = pd.DataFrame(dense, columns=list(names))
    t2 = time.perf_counter()
    itemsets = apriori(onehot, min_support=min_support, use_colnames=True, max_len=2)
    t3 = time.perf_counter()
    rules = association_rules(itemsets, metric="confidence", min_threshold=min_confidence)
    t4 = time.perf_counter()
    n = len(onehot)
    del onehot, dense
    items, pairs = {}, {}
    for s, support in zip(itemsets["itemsets"], itemsets["support"], strict=True):
        if len(s) == 1:
            items[next(iter(s))] = round(support * n)
        else:
            pairs[tuple(sorted(s))] = round(support * n)
    rules_set = {
        (next(iter(a)), next(iter(c)))
        for a, c in zip(rules["antecedents"], rules["consequents"], strict=True)
    }
    return {
        "seconds": t4 - t0,
        "read": t1 - t0,
        "onehot": t2 - t1,
        "apriori": t3 - t2,
        "rules": t4 - t3,
        "baskets": n,
        "items": items,
        "pairs": pairs,
        "rules_set": rules_set,
    }


@contextmanager
def phase_timer():
    """Time the simulated runners' phases of each step (input split, map, sort, reduce).

    Wraps five methods of :class:`mrjob.sim.SimMRJobRunner` (the local runner's base) while
    active; the runner's behaviour is unchanged.

    Yields
    ------
    list of tuple
        Appended ``(step, phase, seconds)`` as the phases run (step 1-based).
    """
    from mrjob.sim import SimMRJobRunner

    phases = []
    current = [0]
    wrapped = {
        "_run_step": None,
        "_split_mapper_input": "input split",
        "_run_mappers_and_combiners": "map",
        "_sort_reducer_input": "sort",
        "_split_reducer_input": "reducer split",
        "_run_reducers": "reduce",
    }
    originals = {name: getattr(SimMRJobRunner, name) for name in wrapped}

    def make(name, label):
        original = originals[name]

        def timed(self, *args, **kwargs):
            if label is None:  # _run_step(step, step_num)
                current[0] = args[1] + 1
                return original(self, *args, **kwargs)
            started = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                phases.append((current[0], label, time.perf_counter() - started))

        return timed

    for name, label in wrapped.items():
        setattr(SimMRJobRunner, name, make(name, label))
    try:
        yield phases
    finally:
        for name, original in originals.items():
            setattr(SimMRJobRunner, name, original)


def _summed_counters(counters):
    out = {}
    for step in counters:
        for group, names in step.items():
            for name, value in names.items():
                out.setdefault(group, {})
                out[group][name] = out[group].get(name, 0) + value
    return out


def time_job(basket_input, job_args, conf_paths):
    """Run the job once with the local runner, as the driver does, and time it.

    Parameters
    ----------
    basket_input : BasketInput
    job_args : list of str
        Thresholds and runner options (the input options are added).
    conf_paths : list of str
        mrjob config files (``[]``: none).

    Returns
    -------
    dict
        ``job`` (run.seconds), ``total`` (with reading every row and the cleanup),
        ``phases`` (``[(step, phase, seconds)]``), ``rows`` and ``counters`` (summed over
        the steps).
    """
    gc.collect()
    with phase_timer() as phases:
        started = time.perf_counter()
        with run_job(
            MRItemCooccurrence,
            [str(basket_input.path)],
            basket_input.job_args + job_args,
            runner="local",
            conf_paths=conf_paths,
        ) as run:
            rows = list(run.rows())
            job_seconds = run.seconds
            counters = _summed_counters(run.counters)
        total = time.perf_counter() - started
    return {
        "job": job_seconds,
        "total": total,
        "phases": list(phases),
        "rows": rows,
        "counters": counters,
    }


# -- equal work checks -------------------------------------------------------------------------


def _first_difference(ours, theirs):
    for key in sorted(set(ours) | set(theirs), key=str):
        if ours.get(key) != theirs.get(key):
            return key, ours.get(key), theirs.get(key)
    return None


def check_job(result, counts, min_support, label):
    """Check a job run's rows and counters against the Counter's counts.

    Frequent items and pairs (count / N >= ``min_support``) with their counts, N
    (``crm.baskets``), distinct items and pairs (``crm.items``/``crm.pairs``), and the lines
    read (only the header rejected).

    Raises
    ------
    AssertionError
        Naming the first difference.
    """
    items, pairs, rules = {}, {}, set()
    for row in result["rows"]:
        if row["kind"] == "item":
            items[row["item"]] = row["count"]
        elif row["kind"] == "pair":
            pairs[tuple(row["items"])] = row["count"]
        else:
            rules.add((row["antecedent"], row["consequent"]))
    want_items, want_pairs = counts.frequent(min_support)
    for what, ours, theirs in (("item", items, want_items), ("pair", pairs, want_pairs)):
        diff = _first_difference(ours, theirs)
        if diff:
            raise AssertionError(
                f"{label}: job {what} counts differ from the Counter's: {diff[0]!r} "
                f"job={diff[1]} counter={diff[2]}"
            )
    c = result["counters"]
    got = {
        "baskets": c.get("crm.baskets", {}).get("baskets", 0),
        "distinct items": c.get("crm.items", {}).get("distinct", 0),
        "distinct pairs": c.get("crm.pairs", {}).get("distinct", 0),
        "lines read": c.get("crm.lines", {}).get("read", 0),
        "rejected": c.get("crm.rejected", {}),
    }
    want = {
        "baskets": counts.baskets,
        "distinct items": len(counts.items),
        "distinct pairs": len(counts.pairs),
        "lines read": counts.lines,
        "rejected": {"header": 1},
    }
    if got != want:
        raise AssertionError(f"{label}: job counters {got} != Counter's {want}")
    return rules


def check_mlxtend(result, counts, min_support, job_rules, label):
    """Check mlxtend's N, frequent items and pairs against the Counter, rules against the job.

    Raises
    ------
    AssertionError
        Naming the first difference.
    """
    if result["baskets"] != counts.baskets:
        raise AssertionError(f"{label}: mlxtend N={result['baskets']}, Counter {counts.baskets}")
    want_items, want_pairs = counts.frequent(min_support)
    for what, ours, theirs in (
        ("item", result["items"], want_items),
        ("pair", result["pairs"], want_pairs),
    ):
        diff = _first_difference(ours, theirs)
        if diff:
            raise AssertionError(
                f"{label}: mlxtend {what} counts differ from the Counter's: {diff[0]!r} "
                f"mlxtend={diff[1]} counter={diff[2]}"
            )
    if job_rules is not None and result["rules_set"] != job_rules:
        extra = sorted(result["rules_set"] ^ job_rules)[:3]
        raise AssertionError(f"{label}: rules differ between mlxtend and the job, e.g. {extra}")


# -- reporting ---------------------------------------------------------------------------------


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
    names = ("crm-mapreduce", "mrjob", "mlxtend", "pandas", "numpy")
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
    rate = n / seconds
    if rate >= 1e6:
        return f"{rate / 1e6:.2f}M/s"
    if rate >= 1e4:
        return f"{rate / 1e3:.0f}k/s"
    return f"{rate / 1e3:.1f}k/s"


def summarize(measurements):
    """Add best, median, baskets/s and the ratios to each measurement, in place.

    Parameters
    ----------
    measurements : list of dict
        Each with ``input``, ``baskets``, ``engine``, ``measure`` and ``seconds`` (a list).
    """
    best = {(m["input"], m["engine"]): min(m["seconds"]) for m in measurements}
    for m in measurements:
        m["best"] = min(m["seconds"])
        m["median"] = statistics.median(m["seconds"])
        m["baskets_per_second"] = m["baskets"] / m["best"]
        for engine in REFERENCES:
            ref = best.get((m["input"], engine))
            m[f"vs {engine}"] = None if ref is None else m["best"] / ref


def format_table(measurements):
    """The measurements as a plain-text table.

    Parameters
    ----------
    measurements : list of dict
        As filled by :func:`summarize`.

    Returns
    -------
    str
    """
    head = ["input", "baskets", "lines", "engine", "measure", "best s", "median s", "runs"]
    head += ["baskets/s"] + [f"vs {e}" for e in REFERENCES]
    rows = [head]
    for m in measurements:
        rows.append(
            [
                m["input"],
                f"{m['baskets']:,}",
                f"{m['lines']:,}",
                m["engine"],
                m["measure"],
                f"{m['best']:.2f}",
                f"{m['median']:.2f}",
                str(len(m["seconds"])),
                _rate(m["baskets"], m["best"]),
            ]
            + ["-" if m[f"vs {e}"] is None else f"{m[f'vs {e}']:.2f}x" for e in REFERENCES]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    right = {1, 2, 5, 6, 7, 8, 9, 10}
    return "\n".join(
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    )


def format_phases(phases):
    """Median seconds per step and phase of the local runs, one line per step.

    Parameters
    ----------
    phases : list of list of tuple
        One ``[(step, phase, seconds)]`` list per run.

    Returns
    -------
    str
    """
    per = {}
    for run in phases:
        summed = {}
        for step, phase, seconds in run:
            summed[step, phase] = summed.get((step, phase), 0.0) + seconds
        for key, seconds in summed.items():
            per.setdefault(key, []).append(seconds)
    lines = []
    for step in sorted({s for s, _ in per}):
        parts = [
            f"{phase} {statistics.median(per[step, phase]):.2f}"
            for phase in ("input split", "map", "sort", "reducer split", "reduce")
            if (step, phase) in per
        ]
        total = sum(statistics.median(v) for (s, _), v in per.items() if s == step)
        lines.append(f"  step {step}: {total:.2f} s = " + ", ".join(parts))
    return "\n".join(lines)


def summary_line(measurements):
    """The headline for the largest input: the local job (job+output) against both.

    Returns
    -------
    str or None
        ``None`` when the job did not run.
    """
    jobs = [m for m in measurements if m["engine"] == "local" and m["measure"] == "job+output"]
    if not jobs:
        return None
    m = max(jobs, key=lambda j: j["baskets"])
    parts = [f"local job at {m['baskets']:,} baskets ({m['input']}): {m['best']:.1f} s"]
    for engine in REFERENCES:
        ratio = m[f"vs {engine}"]
        if ratio is not None:
            goal = f" (goal <= {GOAL_RATIO:g}x)" if engine == "counter" else ""
            parts.append(f"{ratio:.2f} x {engine}{goal}")
        else:
            parts.append(f"{engine} not run")
    return ", ".join(parts)


# -- main --------------------------------------------------------------------------------------


def repeated(label, func, repeat, key):
    """Call ``func`` ``repeat`` times, or by default once, then twice more if it was short.

    Parameters
    ----------
    label : str
        For the progress messages.
    func : callable
        Returns a dict with the seconds under ``key``.
    repeat : int or None
        Runs; ``None`` means 3 when the first run takes under 5 s, else 1.
    key : str
        The seconds that decide whether a run was short.

    Returns
    -------
    list of dict
        One result per run.
    """
    results = []
    planned = repeat or 1
    while len(results) < planned:
        progress(f"{label}, run {len(results) + 1}/{planned} ...")
        results.append(func())
        r = results[-1]
        if repeat is None and len(results) == 1 and r[key] < SHORT_RUN_SECONDS:
            planned = 3
        shown = ", ".join(f"{k} {v:.2f} s" for k, v in r.items() if isinstance(v, float))
        progress(f"  {shown}")
    return results


def parse_size(text):
    """``supermarket`` or a positive integer (``1000000``, ``1_000_000``, ``1e6``)."""
    if text == SUPERMARKET:
        return text
    try:
        value = float(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size {text!r} should be {SUPERMARKET!r} or a number of baskets"
        ) from None
    if value < 100 or value != int(value):
        raise argparse.ArgumentTypeError(f"size {text!r} should be an integer >= 100")
    return int(value)


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
    parser.add_argument(
        "--sizes",
        type=parse_size,
        nargs="+",
        default=[SUPERMARKET, 1_000_000],
        help="inputs: 'supermarket' and/or N (about N generated orders, one basket each)",
    )
    parser.add_argument("--min-support", type=float, default=0.01, help="for all engines")
    parser.add_argument("--min-confidence", type=float, default=0.5, help="rules (job and mlxtend)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs per engine and input (default: 3 if the first run takes < 5 s, else 1)",
    )
    parser.add_argument(
        "--supermarket",
        type=Path,
        default=default_supermarket_path(),
        help="the supermarket baskets (default from $CRM_DATASETS or ../shared/datasets)",
    )
    parser.add_argument("--seed", type=int, default=42, help="the generator's seed")
    parser.add_argument(
        "--mrjob-conf",
        type=Path,
        default=REPO / "mrjob.conf",
        help="mrjob config the job runs with (the product's)",
    )
    parser.add_argument(
        "--no-mrjob-conf", action="store_true", help="run the job with no mrjob config"
    )
    parser.add_argument(
        "--num-cores",
        type=int,
        default=None,
        help="the local runner's processes (default: the mrjob config's, else all cores)",
    )
    parser.add_argument(
        "--job-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra job argument, repeatable (e.g. --job-arg=--combine-max=100000)",
    )
    parser.add_argument("--skip-mlxtend", action="store_true", help="do not run mlxtend")
    parser.add_argument(
        "--mlxtend-max-gb",
        type=float,
        default=8.0,
        help="skip mlxtend on an input whose dense apriori would need more memory",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where to generate (and reuse) the synthetic logs; default: a temp dir",
    )
    parser.add_argument("--json", type=Path, default=None, help="write all measurements here")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if not 0.0 < args.min_support <= 1.0:
        parser.error(f"--min-support={args.min_support} should be in (0, 1] (mlxtend's range)")
    if SUPERMARKET in args.sizes and not args.supermarket.exists():
        parser.error(f"the supermarket baskets are not at {args.supermarket} (--supermarket)")
    if not args.no_mrjob_conf and not args.mrjob_conf.exists():
        parser.error(f"no mrjob config at {args.mrjob_conf} (or use --no-mrjob-conf)")
    return args


def mlxtend_skip_reason(counts, args):
    """Why mlxtend is not run on this input, or ``None``."""
    if args.skip_mlxtend:
        return "--skip-mlxtend"
    need, frequent, candidates = mlxtend_estimate(counts, args.min_support)
    limit = args.mlxtend_max_gb * 1e9
    if need > limit:
        return (
            f"dense apriori needs ~{need / 1e9:.1f} GB ({counts.baskets:,} baskets x "
            f"{candidates:,} candidate pairs of {frequent} frequent items x "
            f"{MLXTEND_BYTES_PER_CELL} bytes) > --mlxtend-max-gb {args.mlxtend_max_gb:g}"
        )
    return None


def main(argv=None):
    """Build the inputs, time every engine, check equal work, print the table.

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
    conf_paths = [] if args.no_mrjob_conf else [str(args.mrjob_conf)]
    job_args = ["--min-support", repr(args.min_support)]
    job_args += ["--min-confidence", repr(args.min_confidence)]
    if args.num_cores:
        job_args += ["--num-cores", str(args.num_cores)]
    job_args += args.job_arg
    own_dir = args.work_dir is None
    work_dir = Path(tempfile.mkdtemp(prefix="bench_baskets_")) if own_dir else args.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    measurements, notes, phases_by_input = [], [], {}
    try:
        for size in args.sizes:
            if size == SUPERMARKET:
                basket_input = supermarket_input(args.supermarket)
            else:
                basket_input = synthetic_input(size, args.seed, work_dir)
            label = basket_input.label

            runs = repeated(
                f"counter, {label}", lambda b=basket_input: time_counter(b), args.repeat, "seconds"
            )
            counts = runs[0]["counts"]
            for r in runs[1:]:
                if (r["counts"].items, r["counts"].pairs) != (counts.items, counts.pairs):
                    raise AssertionError(f"{label}: the Counter's runs disagree")
                del r["counts"]
            base = {"input": label, "baskets": counts.baskets, "lines": counts.lines}
            n_frequent = [len(t) for t in counts.frequent(args.min_support)]
            progress(
                f"  {counts.baskets:,} baskets, {len(counts.items):,} items, "
                f"{len(counts.pairs):,} distinct pairs; at support >= {args.min_support:g}: "
                f"{n_frequent[0]:,} items, {n_frequent[1]:,} pairs"
            )
            measurements.append(
                {
                    **base,
                    "engine": "counter",
                    "measure": "read+count",
                    "seconds": [r["seconds"] for r in runs],
                    "items": len(counts.items),
                    "pairs": len(counts.pairs),
                    "frequent_items": n_frequent[0],
                    "frequent_pairs": n_frequent[1],
                }
            )
            del runs

            job_runs = repeated(
                f"local job, {label}",
                lambda b=basket_input: time_job(b, job_args, conf_paths),
                args.repeat,
                "total",
            )
            job_rules = None
            for r in job_runs:
                job_rules = check_job(r, counts, args.min_support, label)
            progress(f"  job counts == Counter counts ({len(job_runs)} runs checked)")
            phases_by_input[label] = [r["phases"] for r in job_runs]
            for measure, key in (("job", "job"), ("job+output", "total")):
                measurements.append(
                    {
                        **base,
                        "engine": "local",
                        "measure": measure,
                        "seconds": [r[key] for r in job_runs],
                    }
                )
            measurements[-1]["phases"] = phases_by_input[label]
            measurements[-1]["rules"] = len(job_rules)
            del job_runs

            reason = mlxtend_skip_reason(counts, args)
            if reason:
                note = f"mlxtend skipped on {label}: {reason}"
                progress(note)
                notes.append(note)
            else:
                runs = repeated(
                    f"mlxtend, {label}",
                    lambda b=basket_input: time_mlxtend(b, args.min_support, args.min_confidence),
                    args.repeat,
                    "seconds",
                )
                for r in runs:
                    check_mlxtend(r, counts, args.min_support, job_rules, label)
                progress("  mlxtend counts == Counter counts, mlxtend rules == job rules")
                parts = ("read", "onehot", "apriori", "rules")
                measurements.append(
                    {
                        **base,
                        "engine": "mlxtend",
                        "measure": "read+apriori+rules",
                        "seconds": [r["seconds"] for r in runs],
                        "parts": {p: statistics.median(r[p] for r in runs) for p in parts},
                    }
                )
                del runs
            del counts
            gc.collect()
    finally:
        if own_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    summarize(measurements)
    info["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    packages = info["packages"]
    print(
        f"# cpus {info['cpu_count']}, python {platform.python_version()}, "
        f"mrjob {packages['mrjob']}, mlxtend {packages['mlxtend']}, "
        f"pandas {packages['pandas']}, numpy {packages['numpy']}, "
        f"OMP_NUM_THREADS={info['OMP_NUM_THREADS']}, "
        f"load {info['loadavg_start'][0]:.2f} -> {info['loadavg_end'][0]:.2f}"
    )
    print(
        f"# min support {args.min_support:g}, min confidence {args.min_confidence:g}, "
        f"mrjob conf {'none' if not conf_paths else conf_paths[0]}, job args {job_args}"
    )
    print("# checked: job counts == Counter counts; mlxtend counts == Counter, rules == job")
    print(format_table(measurements))
    for m in measurements:
        if m["engine"] == "mlxtend":
            parts = ", ".join(f"{k} {v:.2f}" for k, v in m["parts"].items())
            print(f"# mlxtend on {m['input']} (s, median): {parts}")
    for label, phases in phases_by_input.items():
        print(f"# local job on {label}, seconds per step and phase (median of runs):")
        print(format_phases(phases))
    for note in notes:
        print(f"# {note}")
    line = summary_line(measurements)
    if line:
        print(line)
    if args.json:
        payload = {
            "machine": info,
            "args": sys.argv[1:] if argv is None else list(argv),
            "measurements": measurements,
            "notes": notes,
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
