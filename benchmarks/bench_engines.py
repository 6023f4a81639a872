"""The RFM job on every engine that runs here: local runner, Hadoop (YARN + HDFS), Spark.

For each engine the job runs on a tiny input (the first 1,000 lines of CDNOW) and on
CDNOW x100 (6,965,901 lines, ~209 MB). The tiny run's wall time is the engine's fixed
start-up cost (JVMs, YARN application master and containers, Spark session, mrjob's
uploads); the report gives the large run's wall time, lines/s, and the share of it that
fixed cost explains. The local runner is the reference for ratios.

* ``local``: mrjob's local runner, two task processes, local files.
* ``hadoop``: mrjob's hadoop runner on the project's single-node cluster; input on HDFS
  (the upload is timed separately, not counted in the job).
* ``spark``: mrjob's spark runner, ``local[2]`` master, local files.

Uses the running cluster when ``HADOOP_CONF_DIR`` and ``CRM_WEBHDFS_URL`` are set (see
``scripts/hadoop-cluster.sh env``), else starts one in a temporary directory and stops it.

Usage::

    .venv/bin/python benchmarks/bench_engines.py [--copies 100] [--engines local hadoop spark]
"""

import os

os.environ["OMP_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from bench_rfm import (  # noqa: E402
    JOB_ARGS,
    build_input,
    default_cdnow_path,
    machine_info,
    progress,
)

from models.job_runner import run_job  # noqa: E402
from mr_jobs.rfm import MRCustomerRFM  # noqa: E402

ENGINES = ("local", "hadoop", "spark")
TINY_LINES = 1_000
CLUSTER_SCRIPT = REPO / "scripts" / "hadoop-cluster.sh"
MRJOB_CONF = str(REPO / "mrjob.conf")


class Cluster:
    """The Hadoop cluster the benchmark uses: the caller's, or one it starts and stops."""

    def __init__(self, work_dir):
        self.started_dir = None
        if not (os.environ.get("HADOOP_CONF_DIR") and os.environ.get("CRM_WEBHDFS_URL")):
            self.started_dir = Path(tempfile.mkdtemp(prefix="bench-hadoop-", dir=work_dir))
            progress(f"starting a Hadoop cluster in {self.started_dir} ...")
            self._script("start")
            exports = self._script("env").stdout
            for line in exports.splitlines():
                name, _, value = line.removeprefix("export ").partition("=")
                os.environ[name] = os.path.expandvars(value.replace("'", "").replace('"', ""))
        self.hadoop = str(Path(os.environ["HADOOP_HOME"]) / "bin" / "hadoop")

    def _script(self, command):
        cmd = [str(CLUSTER_SCRIPT), command, "--dir", str(self.started_dir)]
        cmd += ["--python", sys.executable]
        return subprocess.run(cmd, check=True, capture_output=True, text=True)

    def put(self, local, remote):
        """Copy ``local`` to HDFS ``remote``; return the seconds it took."""
        started = time.perf_counter()
        subprocess.run([self.hadoop, "fs", "-mkdir", "-p", os.path.dirname(remote)], check=True)
        subprocess.run(
            [self.hadoop, "fs", "-put", "-f", str(local), remote],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        return time.perf_counter() - started

    def stop(self):
        if self.started_dir is not None:
            self._script("stop")


def tiny_input(source, work_dir):
    """The first :data:`TINY_LINES` lines of the CDNOW log."""
    path = Path(work_dir) / "cdnow_tiny.txt"
    with open(source, "rb") as f:
        path.write_bytes(b"".join(f.readline() for _ in range(TINY_LINES)))
    return path


def time_engine(engine, path):
    """Run the RFM job once on ``path`` with ``engine``; return (seconds, rows, lines)."""
    started = time.perf_counter()
    with run_job(
        MRCustomerRFM, [str(path)], JOB_ARGS, runner=engine, conf_paths=[MRJOB_CONF]
    ) as run:
        rows = sum(1 for _ in run.rows())
        lines = run.lines
        seconds = run.seconds
    progress(f"  {engine}: {seconds:.1f} s job ({time.perf_counter() - started:.1f} s total)")
    return seconds, rows, lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--copies", type=int, default=100)
    p.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    p.add_argument("--cdnow", type=Path, default=default_cdnow_path())
    p.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "crm-bench")
    p.add_argument("--json", type=Path, help="also save the results here")
    args = p.parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    big = build_input(args.cdnow, args.copies, args.work_dir)
    tiny = tiny_input(args.cdnow, args.work_dir)
    info = machine_info()
    cluster = Cluster(args.work_dir) if "hadoop" in args.engines else None
    results = []
    try:
        for engine in args.engines:
            tiny_path, big_path, upload = tiny, big.path, None
            if engine == "hadoop":
                tiny_path = "hdfs:///bench/cdnow_tiny.txt"
                big_path = f"hdfs:///bench/{big.path.name}"
                cluster.put(tiny, tiny_path)
                progress(f"uploading {big.path.name} to HDFS ...")
                upload = cluster.put(big.path, big_path)
            progress(f"{engine}: tiny input ({TINY_LINES:,} lines)")
            fixed, _, _ = time_engine(engine, tiny_path)
            progress(f"{engine}: {big.label} ({big.lines:,} lines)")
            seconds, rows, lines = time_engine(engine, big_path)
            if rows != big.customers or lines["read"] != big.lines:
                raise AssertionError(f"{engine}: {rows:,} rows, {lines} lines: wrong output")
            results.append(
                {
                    "engine": engine,
                    "lines": big.lines,
                    "seconds": seconds,
                    "fixed_seconds": fixed,
                    "fixed_share": min(fixed / seconds, 1.0),
                    "lines_per_second": big.lines / seconds,
                    "hdfs_upload_seconds": upload,
                }
            )
    finally:
        if cluster is not None:
            cluster.stop()

    ref = next((r["seconds"] for r in results if r["engine"] == "local"), None)
    print(f"# cpus {os.cpu_count()}, python {sys.version.split()[0]}, {big.label}: {big.lines:,}")
    head = f"{'engine':8} {'job s':>8} {'lines/s':>9} {'fixed s':>8} {'fixed share':>12}"
    print(head + f" {'vs local':>9} {'HDFS upload s':>14}")
    for r in results:
        vs = f"{r['seconds'] / ref:.2f}x" if ref else "-"
        up = f"{r['hdfs_upload_seconds']:.1f}" if r["hdfs_upload_seconds"] is not None else "-"
        print(
            f"{r['engine']:8} {r['seconds']:8.1f} {r['lines_per_second'] / 1e3:8.0f}k "
            f"{r['fixed_seconds']:8.1f} {r['fixed_share']:11.0%} {vs:>9} {up:>14}"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2))


if __name__ == "__main__":
    main()
