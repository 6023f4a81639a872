"""Benchmark the RFM MapReduce job (inline and local runners) against pandas, in one run.

Inputs are the CDNOW log repeated N times (``--copies``), with customer ids offset by
``k * 100000`` in copy ``k`` so customers are distinct across copies. Each engine is timed
on the same file in the same process run:

* ``pandas-aggregate``: ``read_csv`` + a plain per-customer groupby-agg (minimal RFM);
* ``pandas-same-outputs``: ``read_csv`` + every per-customer output of the job, computed
  with integer-code groupbys (checked against the job's output before timing);
* ``inline`` / ``local``: :class:`mr_jobs.rfm.MRCustomerRFM` run through
  :func:`models.job_runner.run_job`, as the driver does. ``job`` is ``run.seconds`` (the
  runner's ``run()``), ``job+output`` adds reading and decoding every output row and the
  runner's cleanup.

Run from the repository root::

    python benchmarks/bench_rfm.py                      # cdnow x1 and x100, all engines
    python benchmarks/bench_rfm.py --copies 1 3 --json /tmp/bench.json
"""

import os

# Before numpy/pandas are imported: one BLAS/OpenMP thread, for stable numbers. The local
# runner's task processes inherit it.
os.environ["OMP_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
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

from models.job_runner import run_job  # noqa: E402
from mr_jobs.records import parse_as_of  # noqa: E402
from mr_jobs.rfm import MRCustomerRFM, apply_as_of  # noqa: E402

CDNOW_HEADER = [b"customer_id", b"date", b"number_of_cds", b"dollar_value"]
ID_OFFSET = 100_000
JOB_ARGS = ["--input-format", "cdnow"]
RUNNERS = ("inline", "local")
PANDAS_ENGINES = ("pandas-aggregate", "pandas-same-outputs")
REFERENCE = "pandas-same-outputs"
#: Below this many seconds for a first run, the default is 3 runs instead of 1.
SHORT_RUN_SECONDS = 5.0


def progress(message):
    """Print a progress message to stderr, flushed at once.

    Parameters
    ----------
    message : str
        The text to print.
    """
    print(message, file=sys.stderr, flush=True)


def default_cdnow_path():
    """The CDNOW log: ``$CRM_DATASETS/cdnow/CDNOW_master.txt`` or ``../shared/datasets/...``.

    Returns
    -------
    pathlib.Path
        The path (not checked for existence).
    """
    datasets = os.environ.get("CRM_DATASETS")
    base = Path(datasets) if datasets else REPO.parent / "shared" / "datasets"
    return base / "cdnow" / "CDNOW_master.txt"


# -- scaled inputs ---------------------------------------------------------------------------


class ScaledInput:
    """A built input file: the CDNOW header once, then ``copies`` copies of the data lines.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    copies : int
        How many copies of the data lines it holds.
    lines : int
        Lines in the file, header included (what the job counts as read).
    customers : int
        Distinct customer ids in the file.
    """

    def __init__(self, path, copies, lines, customers):
        self.path = path
        self.copies = copies
        self.lines = lines
        self.customers = customers

    @property
    def label(self):
        """``"cdnow xN"``."""
        return f"cdnow x{self.copies}"


def _split_cdnow(source):
    """The header line, line ending, and data lines (leading blanks stripped) of the log."""
    raw = Path(source).read_bytes()
    eol = b"\r\n" if b"\r\n" in raw[:4096] else b"\n"
    header, _, body = raw.partition(eol)
    if header.split() != CDNOW_HEADER:
        raise ValueError(f"{source}: unexpected header {header!r}, want {CDNOW_HEADER}")
    data = [line.lstrip() for line in body.split(eol) if line.strip()]
    ids = {line.split(None, 1)[0] for line in data}
    bad = [i for i in ids if len(i) != 5 or not i.isdigit()]
    if bad:
        raise ValueError(f"{source}: customer ids must be 5 digits, found e.g. {bad[:3]}")
    return header + eol, eol, data, len(ids)


def build_input(source, copies, work_dir):
    """Write (or reuse) ``cdnow_x{copies}.txt`` in ``work_dir``.

    Copy ``k`` (0-based) offsets every customer id by ``k * 100000`` and writes it zero
    padded to 7 digits (``0100001``); dates, quantities and values are unchanged. An
    existing file of exactly the expected size is reused.

    Parameters
    ----------
    source : pathlib.Path
        The CDNOW log.
    copies : int
        Number of copies of the data lines, >= 1.
    work_dir : pathlib.Path
        Where to write the file.

    Returns
    -------
    ScaledInput
    """
    header, eol, data, n_ids = _split_cdnow(source)
    n = len(data)
    data_bytes = sum(len(line) for line in data)
    prefixes = [b"%02d" % k for k in range(copies)]
    expected = len(header) + sum(data_bytes + n * (1 + len(p) + len(eol)) for p in prefixes)
    path = Path(work_dir) / f"cdnow_x{copies}.txt"
    built = ScaledInput(path, copies, 1 + n * copies, n_ids * copies)
    if path.exists() and path.stat().st_size == expected:
        progress(f"reusing {path} ({expected:,} bytes)")
        return built
    progress(f"building cdnow x{copies} ({1 + n * copies:,} lines) in {path} ...")
    started = time.perf_counter()
    tmp = path.with_suffix(".partial")
    with open(tmp, "wb") as out:
        out.write(header)
        for prefix in prefixes:
            lead = b" " + prefix
            out.write(lead + (eol + lead).join(data) + eol)
    if tmp.stat().st_size != expected:
        raise RuntimeError(f"{tmp}: {tmp.stat().st_size:,} bytes written, {expected:,} expected")
    tmp.replace(path)
    progress(f"  built in {time.perf_counter() - started:.1f} s ({expected / 1e6:.0f} MB)")
    return built


# -- engines -----------------------------------------------------------------------------------


def pandas_aggregate(path):
    """Minimal RFM with pandas: per customer first/last date, lines, quantity, value.

    Parameters
    ----------
    path : path-like
        A CDNOW-format file.

    Returns
    -------
    pandas.DataFrame
        One row per customer, indexed by customer id.
    """
    # numeric ids and YYYYMMDD dates as int64, as read_csv infers them: string keys make
    # pandas' groupby min/max ~25x slower, which would flatter the job
    df = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": np.int64, "date": np.int64})
    return df.groupby("customer_id").agg(
        first=("date", "min"),
        last=("date", "max"),
        lines=("date", "size"),
        total_quantity=("number_of_cds", "sum"),
        total_value=("dollar_value", "sum"),
    )


def pandas_same_outputs(path):
    """The job's per-customer outputs with pandas/numpy, using integer-code groupbys.

    Customer ids are factorized to codes, dates to sorted date codes; the values are
    summed per ``(customer, day)`` on one int64 key ``code * n_dates + date_code`` whose
    sorted order is by customer, then day, so each customer's days are a contiguous,
    chronological run of the per-day table.

    Parameters
    ----------
    path : path-like
        A CDNOW-format file.

    Returns
    -------
    pandas.DataFrame
        Indexed by customer id, with ``first_purchase``/``last_purchase`` (days since
        1970-01-01), ``lines``, ``total_quantity``, ``total_value``, ``mean_order_value``,
        ``purchase_days``, ``recency_days``, ``tenure_days``, ``frequency``, ``recency``,
        ``T`` and ``monetary_value`` (lifetimes definitions, daily periods, as of the
        latest date in the data).
    """
    df = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str, "date": np.int64})
    codes, ids = pd.factorize(df["customer_id"])
    date_codes, dates = pd.factorize(df["date"], sort=True)
    n, n_dates = len(ids), len(dates)
    day_of = (
        pd.to_datetime(dates.astype(str), format="%Y%m%d")
        .to_numpy()
        .astype("datetime64[D]")
        .astype(np.int64)
    )
    quantity = df["number_of_cds"].to_numpy()
    value = df["dollar_value"].to_numpy()

    lines = np.bincount(codes, minlength=n)
    total_quantity = np.bincount(codes, weights=quantity, minlength=n).round().astype(np.int64)
    total_value = np.bincount(codes, weights=value, minlength=n)

    key = codes.astype(np.int64) * n_dates + date_codes
    per_day = pd.Series(value).groupby(key, sort=True).sum()
    day_keys = per_day.index.to_numpy()
    day_customer = day_keys // n_dates
    day_number = day_of[day_keys % n_dates]
    purchase_days = np.bincount(day_customer, minlength=n)
    starts = np.cumsum(purchase_days) - purchase_days
    first = day_number[starts]
    last = day_number[starts + purchase_days - 1]
    first_day_value = per_day.to_numpy()[starts]

    max_day = day_of[-1]
    frequency = purchase_days - 1
    monetary = np.where(
        frequency > 0, (total_value - first_day_value) / np.maximum(frequency, 1), 0.0
    )
    return pd.DataFrame(
        {
            "first_purchase": first,
            "last_purchase": last,
            "lines": lines,
            "total_quantity": total_quantity,
            "total_value": total_value,
            "mean_order_value": total_value / lines,
            "purchase_days": purchase_days,
            "recency_days": max_day - last,
            "tenure_days": max_day - first,
            "frequency": frequency,
            "recency": last - first,
            "T": max_day - first,
            "monetary_value": monetary,
        },
        index=pd.Index(ids, name="customer_id"),
    )


def time_pandas(engine, scaled):
    """Time one pandas variant (read_csv + computation) once.

    Parameters
    ----------
    engine : str
        ``"pandas-aggregate"`` or ``"pandas-same-outputs"``.
    scaled : ScaledInput
        The input.

    Returns
    -------
    dict
        ``{"seconds": float}``.
    """
    func = pandas_aggregate if engine == "pandas-aggregate" else pandas_same_outputs
    gc.collect()
    started = time.perf_counter()
    result = func(scaled.path)
    seconds = time.perf_counter() - started
    if len(result) != scaled.customers:
        raise AssertionError(f"{engine}: {len(result):,} customers, {scaled.customers:,} expected")
    return {"seconds": seconds}


def _check_accounting(lines, scaled, runner):
    expected = {
        "read": scaled.lines,
        "accepted": scaled.lines - 1,
        "rejected": 1,
        "rejected_by_reason": {"header": 1},
    }
    if lines != expected:
        raise AssertionError(f"{runner} on {scaled.label}: line counters {lines} != {expected}")


def time_job(runner, scaled):
    """Run the RFM job once as the driver does and time it.

    Parameters
    ----------
    runner : str
        ``"inline"`` or ``"local"``.
    scaled : ScaledInput
        The input.

    Returns
    -------
    dict
        ``{"job": run.seconds, "total": seconds including reading every output row and
        the runner's cleanup, "lines": the line counters}``.
    """
    gc.collect()
    started = time.perf_counter()
    with run_job(MRCustomerRFM, [str(scaled.path)], JOB_ARGS, runner=runner, conf_paths=[]) as run:
        n_rows = sum(1 for _ in run.rows())
        job_seconds = run.seconds
        lines = run.lines
    total = time.perf_counter() - started
    _check_accounting(lines, scaled, runner)
    if n_rows != scaled.customers:
        raise AssertionError(f"{runner} on {scaled.label}: {n_rows:,} rows, {scaled.customers:,}")
    return {"job": job_seconds, "total": total, "lines": lines}


# -- equal work check --------------------------------------------------------------------------


def check_outputs_agree(scaled):
    """Compare :func:`pandas_same_outputs` with the job's output (inline runner, untimed).

    The job leaves ``T``, ``recency_days`` and ``tenure_days`` empty without ``--as-of``;
    as the driver does, they are filled with :func:`mr_jobs.rfm.apply_as_of` at the latest
    last purchase. ``frequency``, ``recency``, ``T``, the day counts, dates, lines and
    quantities must be equal; ``monetary_value``, ``total_value`` and
    ``mean_order_value`` within 1e-9.

    Parameters
    ----------
    scaled : ScaledInput
        A small input (the 1-copy file).

    Raises
    ------
    AssertionError
        On any difference, naming the column and an example customer.
    """
    progress(f"checking pandas-same-outputs against the job (inline, {scaled.label}) ...")
    with run_job(
        MRCustomerRFM, [str(scaled.path)], JOB_ARGS, runner="inline", conf_paths=[]
    ) as run:
        rows = list(run.rows())
    as_of = parse_as_of(max(r["last_purchase"][:10] for r in rows))
    job = pd.DataFrame([apply_as_of(r, as_of) for r in rows]).set_index("customer_id")
    epoch = datetime.date(1970, 1, 1).toordinal()
    for column in ("first_purchase", "last_purchase"):
        job[column] = [datetime.date.fromisoformat(t[:10]).toordinal() - epoch for t in job[column]]
    ref = pandas_same_outputs(scaled.path)
    if len(ref) != len(job) or not ref.index.sort_values().equals(job.index.sort_values()):
        raise AssertionError(f"customers differ: pandas {len(ref):,}, job {len(job):,}")
    ref = ref.loc[job.index]
    exact = ["first_purchase", "last_purchase", "lines", "total_quantity", "purchase_days"]
    exact += ["recency_days", "tenure_days", "frequency", "recency", "T"]
    for column in exact:
        ours, theirs = job[column].to_numpy(np.int64), ref[column].to_numpy(np.int64)
        if not np.array_equal(ours, theirs):
            i = int(np.flatnonzero(ours != theirs)[0])
            raise AssertionError(
                f"outputs differ in {column!r}: customer {job.index[i]} job={ours[i]} "
                f"pandas={theirs[i]}"
            )
    for column in ("monetary_value", "total_value", "mean_order_value"):
        ours, theirs = job[column].to_numpy(float), ref[column].to_numpy(float)
        diff = np.abs(ours - theirs)
        if not (diff <= 1e-9).all():
            i = int(np.argmax(diff))
            raise AssertionError(
                f"outputs differ in {column!r} by up to {diff[i]:.3g}: customer "
                f"{job.index[i]} job={ours[i]!r} pandas={theirs[i]!r}"
            )
    progress(f"  outputs agree ({len(job):,} customers, {len(exact) + 3} columns)")


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
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(affinity) if affinity is not None else None,
        "python": sys.version,
        "platform": platform.platform(),
        "packages": {name: version(name) for name in ("crm-mapreduce", "mrjob", "pandas", "numpy")},
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "PYTHONUNBUFFERED": os.environ.get("PYTHONUNBUFFERED"),
        "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def _rate(lines, seconds):
    rate = lines / seconds
    if rate >= 1e6:
        return f"{rate / 1e6:.2f}M/s"
    return f"{rate / 1e3:.0f}k/s"


def summarize(measurements):
    """Add best, median, lines/s and ratios to each measurement, in place.

    Parameters
    ----------
    measurements : list of dict
        Each with ``input``, ``lines``, ``engine``, ``measure`` and ``seconds`` (a list).
    """
    best = {(m["input"], m["engine"]): min(m["seconds"]) for m in measurements}
    for m in measurements:
        m["best"] = min(m["seconds"])
        m["median"] = statistics.median(m["seconds"])
        m["lines_per_second"] = m["lines"] / m["best"]
        for engine in PANDAS_ENGINES:
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
    head = ["input", "lines", "engine", "measure", "best s", "median s", "runs", "lines/s"]
    head += [f"vs {e}" for e in reversed(PANDAS_ENGINES)]
    rows = [head]
    for m in measurements:
        ratios = [m[f"vs {e}"] for e in reversed(PANDAS_ENGINES)]
        rows.append(
            [
                m["input"],
                f"{m['lines']:,}",
                m["engine"],
                m["measure"],
                f"{m['best']:.2f}",
                f"{m['median']:.2f}",
                str(len(m["seconds"])),
                _rate(m["lines"], m["best"]),
            ]
            + ["-" if r is None else f"{r:.1f}x" for r in ratios]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    right = {1, 4, 5, 6, 7, 8, 9}
    return "\n".join(
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    )


def summary_line(measurements):
    """The headline for the largest input: the local (else inline) runner vs pandas.

    Parameters
    ----------
    measurements : list of dict
        As filled by :func:`summarize`.

    Returns
    -------
    str or None
        ``None`` when no job was run.
    """
    jobs = [m for m in measurements if m["engine"] in RUNNERS and m["measure"] == "job+output"]
    if not jobs:
        return None
    largest = max(m["lines"] for m in jobs)
    at_largest = {m["engine"]: m for m in jobs if m["lines"] == largest}
    runner = "local" if "local" in at_largest else "inline"
    total = at_largest[runner]
    job_only = next(
        m
        for m in measurements
        if m["input"] == total["input"] and m["engine"] == runner and m["measure"] == "job"
    )
    text = f"{runner} runner at {largest:,} lines: "
    same, agg = total[f"vs {REFERENCE}"], total["vs pandas-aggregate"]
    if same is None:
        return text + f"{total['best']:.1f} s job+output, {job_only['best']:.1f} s job (no pandas)"
    return (
        text + f"{same:.1f} x {REFERENCE} (goal <= 5x), {agg:.1f} x pandas-aggregate "
        f"[job+output; job only: {job_only[f'vs {REFERENCE}']:.1f} x {REFERENCE}]"
    )


# -- main --------------------------------------------------------------------------------------


def repeated(label, func, repeat):
    """Call ``func`` ``repeat`` times, or by default once, then twice more if it was short.

    Parameters
    ----------
    label : str
        For the progress messages.
    func : callable
        Returns a dict with the seconds under ``"seconds"`` or ``"total"``.
    repeat : int or None
        Runs; ``None`` means 3 when the first run takes under 5 s, else 1.

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
        if repeat is None and len(results) == 1:
            if r.get("seconds", r.get("total")) < SHORT_RUN_SECONDS:
                planned = 3
        shown = ", ".join(f"{k} {v:.2f} s" for k, v in r.items() if isinstance(v, float))
        progress(f"  {shown}")
    return results


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
        "--cdnow",
        type=Path,
        default=default_cdnow_path(),
        help="the CDNOW log (default from $CRM_DATASETS or ../shared/datasets)",
    )
    parser.add_argument(
        "--copies",
        type=int,
        nargs="+",
        default=[1, 100],
        help="inputs to build: the data lines repeated N times (100 = 6,965,901 lines)",
    )
    parser.add_argument(
        "--runners", nargs="*", choices=RUNNERS, default=list(RUNNERS), help="job runners"
    )
    parser.add_argument("--skip-pandas", action="store_true", help="do not time pandas")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs per engine and input (default: 3 if the first run takes < 5 s, else 1)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where to build (and reuse) the inputs; default: a temp dir deleted at the end",
    )
    parser.add_argument("--json", type=Path, default=None, help="write all measurements here")
    args = parser.parse_args(argv)
    if any(c < 1 for c in args.copies):
        parser.error("--copies must be >= 1")
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if not args.cdnow.exists():
        parser.error(f"the CDNOW log is not at {args.cdnow} (use --cdnow or CRM_DATASETS)")
    return args


def main(argv=None):
    """Build the inputs, check equal work, time every engine, print the table.

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
    own_dir = args.work_dir is None
    work_dir = Path(tempfile.mkdtemp(prefix="bench_rfm_")) if own_dir else args.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    measurements = []
    try:
        inputs = [build_input(args.cdnow, c, work_dir) for c in sorted(set(args.copies))]
        if not args.skip_pandas:
            one = next((s for s in inputs if s.copies == 1), None)
            check_outputs_agree(one or build_input(args.cdnow, 1, work_dir))
        for scaled in inputs:
            base = {"input": scaled.label, "copies": scaled.copies, "lines": scaled.lines}
            engines = [] if args.skip_pandas else list(PANDAS_ENGINES)
            for engine in engines:
                runs = repeated(
                    f"{engine}, {scaled.label}",
                    lambda e=engine, s=scaled: time_pandas(e, s),
                    args.repeat,
                )
                seconds = [r["seconds"] for r in runs]
                measurements.append(
                    {**base, "engine": engine, "measure": "read+compute", "seconds": seconds}
                )
            for runner in args.runners:
                runs = repeated(
                    f"{runner} runner, {scaled.label}",
                    lambda r=runner, s=scaled: time_job(r, s),
                    args.repeat,
                )
                for measure, key in (("job", "job"), ("job+output", "total")):
                    seconds = [r[key] for r in runs]
                    measurements.append(
                        {**base, "engine": runner, "measure": measure, "seconds": seconds}
                    )
    finally:
        if own_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    summarize(measurements)
    info["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(
        f"# cpus {info['cpu_count']}, python {platform.python_version()}, "
        f"pandas {info['packages']['pandas']}, numpy {info['packages']['numpy']}, "
        f"mrjob {info['packages']['mrjob']}, OMP_NUM_THREADS={info['OMP_NUM_THREADS']}, "
        f"load {info['loadavg_start'][0]:.2f} -> {info['loadavg_end'][0]:.2f}"
    )
    if not args.skip_pandas:
        print("# outputs agree: pandas-same-outputs == job output on cdnow x1")
    print(format_table(measurements))
    line = summary_line(measurements)
    if line:
        print(line)
    if args.json:
        payload = {"machine": info, "args": sys.argv[1:], "measurements": measurements}
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
