"""Run one mrjob job from the driver and account for its input.

The driver never runs a runner from a job's own module: it builds the job with arguments,
runs it once, reads the output and the counters, and checks that every line read was
either accepted or rejected for a counted reason.

The Spark runner
----------------
``runner="spark"`` runs the same steps through mrjob's Spark harness (``pyspark`` provides
``spark-submit``; the harness returns the counters through a Spark accumulator). mrjob
0.7.4 leaves a few traps that :func:`run_job` handles, for a master that runs on this
machine (``local``, ``local[N]``, ``local-cluster[...]``) unless the options say otherwise:

- ``SPARK_LOCAL_IP=127.0.0.1`` is given to ``spark-submit`` when it is set neither in the
  environment nor in ``cmdenv`` (without it Spark binds to a non-loopback address).
- Tasks run under the driver's own Python (``sys.executable``) unless ``python_bin`` is
  set: mrjob's default is whatever ``python3`` is first on ``PATH``, which may lack
  mrjob's 3.12/3.13 shims or be another minor version than the driver.
- When the output is on HDFS, mrjob's temporary directory goes to that HDFS
  (:data:`SPARK_HDFS_TMP_DIR`) unless ``spark_tmp_dir`` is set; otherwise (HDFS inputs
  included, which Spark reads directly) a local one is created before the run. (The
  harness writes its counters with ``os.mkdir`` into that directory, which mrjob never
  creates when nothing else is written there: with an ``hdfs://`` output, or when a run
  fails early, the run ended with a FileNotFoundError for ``.../counter-output-step-0``
  that hid the real error.)
- An explicit ``--output-dir`` that already exists is refused before Spark starts, and
  one that a failed run created is removed, so the next run does not hit Spark's
  FileAlreadyExistsException.
- mrjob's temporary directory (``<tmp>/<job key>-spark`` locally, or the one on HDFS),
  which it never removes, is removed when the run is over, failed or not.
- A failed step raises :class:`JobFailedError` naming the job, the runner and the first
  exception found in Spark's log, instead of the whole ``spark-submit`` command line.

Temporary files
---------------
mrjob keeps its working directory (which holds a copy of the input for the local runners)
after a failed run, under ``/tmp`` with mode 0755. Every run here gets a private local
temporary root instead (``tempfile.mkdtemp``: mode 0700, under :data:`TMP_ROOT_ENV` when
set, else the system temporary directory), given to mrjob as ``--local-tmp-dir`` and
removed when the run is over, succeeded, failed or interrupted.

Interrupts
----------
Ctrl-C sends SIGINT to the whole process group, so with ``runner="local"`` mrjob's
``multiprocessing`` task workers got it too and each printed ``Process ForkPoolWorker-N:``
and a traceback. The workers of a local run ignore SIGINT (:func:`_workers_ignore_sigint`):
the driver gets the KeyboardInterrupt, and mrjob terminates its pool on the way out.
"""

import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

from mrjob.parse import is_uri
from mrjob.step import StepFailedException
from mrjob.util import to_lines

from mr_jobs.records import COUNTER_GROUP_LINES, COUNTER_GROUP_OUTPUT, COUNTER_GROUP_REJECTED

__all__ = [
    "RUNNERS",
    "SPARK_HDFS_TMP_DIR",
    "TMP_ROOT_ENV",
    "JobRun",
    "AccountingError",
    "JobFailedError",
    "run_job",
    "run_job_into",
    "task_output_dir",
    "jobs_started",
    "line_accounting",
]

log = logging.getLogger(__name__)

RUNNERS = ("inline", "local", "hadoop", "emr", "spark")

#: Where Spark runs with an ``hdfs://`` output keep mrjob's temporary files, on the
#: output's namenode, when no ``spark_tmp_dir`` is set.
SPARK_HDFS_TMP_DIR = "/tmp/crm-mapreduce/spark"

#: Environment variable naming the directory under which each run's private temporary
#: root is made (default: the system temporary directory).
TMP_ROOT_ENV = "CRM_MR_TMP_DIR"

_started = [0]  # jobs launched by this process: see jobs_started()


def jobs_started():
    """How many jobs :func:`run_job` has launched in this process.

    The command line tells a refusal before any work (exit 2) from a failure at run time
    (exit 1) by whether a job was launched when the error was raised.
    """
    return _started[0]


class AccountingError(RuntimeError):
    """The counters of a run do not add up: lines read != accepted + rejected."""


class JobFailedError(StepFailedException):
    """A step of the job failed; ``reason`` names the job, the runner and the error.

    A :class:`mrjob.step.StepFailedException`, so callers that catch mrjob's own keep
    working; the original is chained as ``__cause__``.
    """


def line_accounting(counters):
    """Lines read, accepted and rejected by reason, from mrjob counters.

    Parameters
    ----------
    counters : list of dict
        ``runner.counters()``: one ``{group: {name: count}}`` dict per step. Only the
        first step reads raw lines, so only its counters are used.

    Returns
    -------
    dict
        ``{"read": int, "accepted": int, "rejected": int, "rejected_by_reason": dict}``.

    Raises
    ------
    AccountingError
        When read != accepted + the sum of the rejections by reason, naming the numbers.
    """
    first = counters[0] if counters else {}
    lines = first.get(COUNTER_GROUP_LINES, {})
    by_reason = {k: v for k, v in sorted(first.get(COUNTER_GROUP_REJECTED, {}).items()) if v}
    read = lines.get("read", 0)
    accepted = lines.get("accepted", 0)
    rejected = sum(by_reason.values())
    if read != accepted + rejected or lines.get("rejected", 0) != rejected:
        raise AccountingError(
            f"lines read={read} != accepted={accepted} + rejected={rejected} "
            f"(by reason: {by_reason}); a task's counters were lost"
        )
    return {
        "read": read,
        "accepted": accepted,
        "rejected": rejected,
        "rejected_by_reason": by_reason,
    }


class JobRun:
    """A finished run: its output rows, counters and wall time (see :func:`run_job`).

    ``output_dir`` is where the runner wrote the output (a local path or a URI); it exists
    until the :func:`run_job` block ends, so a later job can read it.
    """

    def __init__(self, runner, seconds):
        self._runner = runner
        self.seconds = seconds
        self.output_dir = runner.get_output_dir()
        self.counters = runner.counters()
        self.lines = line_accounting(self.counters)

    def output_count(self, name="rows"):
        """The counter ``crm.output`` ``name`` summed over the steps: what the tasks
        counted with :meth:`mr_jobs.base.CrmJob.count_output` (0 when none did)."""
        return sum(step.get(COUNTER_GROUP_OUTPUT, {}).get(name, 0) for step in self.counters)

    @property
    def output_rows(self):
        """Rows the job's tasks wrote, as they counted them (see :meth:`output_count`)."""
        return self.output_count("rows")

    def output_parts(self):
        """The output's non-empty ``part-*`` files (paths or URIs), sorted: the input of a
        later job that reads whole files (``mapper_raw``), which cannot take a directory
        and would start a task for each empty part (the local runner's splits leave some)."""
        fs = self._runner.fs
        parts = [
            path
            for path in fs.ls(self.output_dir)
            if path.rstrip("/").rsplit("/", 1)[-1].startswith("part-") and fs.du(path) > 0
        ]
        return sorted(parts)

    def rows(self):
        """Iterate over the output, one decoded JSON value per line."""
        for line in to_lines(self._runner.cat_output()):  # chunks, in mrjob's contract
            line = line.strip()
            if line:
                yield json.loads(line)


@contextmanager
def run_job(
    job_cls,
    input_paths,
    args=(),
    *,
    runner="inline",
    conf_paths=None,
    progress=None,
    output_dir=None,
):
    """Run ``job_cls`` once and yield a :class:`JobRun` while its output still exists.

    Parameters
    ----------
    job_cls : type
        An :class:`mrjob.job.MRJob` subclass.
    input_paths : list of str
        Input files or directories (local paths or URIs the runner understands).
    args : sequence of str
        Job options, e.g. ``["--as-of", "2024-01-01"]``.
    runner : str
        One of :data:`RUNNERS`.
    conf_paths : list of str or None
        mrjob config files to read; ``[]`` reads none (tests), ``None`` lets mrjob look
        for ``$MRJOB_CONF``, ``~/.mrjob.conf`` and ``/etc/mrjob.conf``.
    progress : callable, optional
        Called with a message before the run starts.
    output_dir : str, optional
        Where the tasks write the output (mrjob's ``--output-dir``: a local path for the
        inline and local runners, an ``hdfs://`` URI for Hadoop); it must not exist.
        Default: a temporary directory of mrjob's.

    Yields
    ------
    JobRun

    Raises
    ------
    ValueError
        Bad arguments, an existing ``--output-dir`` (spark), or no ``spark-submit`` or
        Java for the spark runner.
    JobFailedError
        A step failed on the spark runner (other runners raise mrjob's
        :class:`~mrjob.step.StepFailedException`).
    AccountingError
        See :func:`line_accounting`.

    Notes
    -----
    With ``runner="spark"`` the traps listed in this module's docstring are handled:
    loopback binding, the tasks' Python, the temporary directory and its removal, the
    output directory of a failed run, and the error message.
    """
    if runner not in RUNNERS:
        raise ValueError(f"runner={runner!r} should be one of {RUNNERS}")
    if not input_paths:
        raise ValueError("input_paths is empty: give at least one input file or directory")
    input_paths = [str(p) for p in input_paths]
    with _private_tmp_dir() as local_tmp:
        argv = ["-r", runner, "--local-tmp-dir", local_tmp]
        if conf_paths is not None:
            argv += ["--no-conf"] if not conf_paths else [a for p in conf_paths for a in ("-c", p)]
        argv += list(args)
        if output_dir is not None:
            argv += ["--output-dir", str(output_dir)]
        job = job_cls(args=argv + input_paths)
        if runner == "spark":
            extra = _spark_args(job, input_paths)
            if extra:
                job = job_cls(args=argv + extra + input_paths)
        if progress:
            progress(f"running {job_cls.__name__} with the {runner} runner")
        _started[0] += 1
        with _run(job, job_cls.__name__, runner) as run:
            yield run


#: The directory, inside a publication's staging directory, that a job's tasks write to
#: before their parts move up into the publication (hidden from Hadoop's input readers).
TASK_OUTPUT_NAME = "_task-output"

#: Hadoop Streaming's output reader that takes each line the task prints as a key with
#: no value (``NullWritable``): TextOutputFormat then writes the line as it is. The
#: default reader splits at the first tab, and a line without one becomes a key with an
#: empty value, written with a trailing tab. (An empty
#: ``mapreduce.output.textoutputformat.separator`` does not help: Hadoop drops
#: ``-D name=`` options whose value is empty.)
WHOLE_LINE_READER = "keyonlytext"

_WRITES_LOCAL = ("inline", "local", "spark")
_WRITES_HDFS = ("hadoop", "emr", "spark")


def task_output_dir(publication, runner):
    """Where ``runner``'s tasks can write straight into ``publication``, or None.

    The inline and local runners (and Spark) write local paths; Hadoop, EMR and Spark
    write ``hdfs://`` ones. Other pairs (the local runner with an HDFS publication, Hadoop
    with a local one) return None: the parts are then copied by :func:`run_job_into`,
    streamed file by file, never held in memory.

    Parameters
    ----------
    publication : hdfs_io.Publication
        An open publication.
    runner : str

    Returns
    -------
    str or None
    """
    fs = publication.fs
    target = f"{publication.staging_path.rstrip('/')}/{TASK_OUTPUT_NAME}"
    if fs.scheme == "file" and runner in _WRITES_LOCAL:
        return fs.normalize(target)
    if fs.scheme == "hdfs" and runner in _WRITES_HDFS:
        return fs.uri(target)
    return None


@contextmanager
def run_job_into(publication, job_cls, input_paths, args=(), **kwargs):
    """Run a job whose tasks write the ``part-*`` files of ``publication``.

    The job runs as with :func:`run_job` (same keyword arguments, except ``output_dir``),
    with its output directed into the publication's staging directory when the runner can
    write there (:func:`task_output_dir`); its non-empty ``part-*`` files then move up
    into the publication (a rename, nothing read) and the rest of the job's output
    directory (Hadoop's ``_SUCCESS``) is removed. Otherwise each part is streamed from
    the runner's output into the publication. Either way no row passes through the
    driver's memory: the rows written are the tasks' count
    (:attr:`JobRun.output_rows`).

    Yields
    ------
    JobRun
        With ``published_parts``: the part names now in the publication, sorted.
    """
    runner = kwargs.get("runner", "inline")
    target = task_output_dir(publication, runner)
    if runner in ("hadoop", "emr"):
        args = [*args, *_whole_line_output_args(job_cls, args)]
    with run_job(job_cls, input_paths, args, output_dir=target, **kwargs) as run:
        if target is not None:
            run.published_parts = _adopt_parts(publication, target)
        else:
            run.published_parts = _copy_parts(publication, run)
        yield run


def _whole_line_output_args(job_cls, args):
    """Job options that make Hadoop write the last step's output lines unchanged
    (:data:`WHOLE_LINE_READER`): for its reducer, or for the mapper of a map-only job."""
    steps = job_cls(args=list(args)).steps()
    last = steps[-1].description(len(steps) - 1)
    if "reducer" in last:
        stream = "stream.reduce.output"
    elif len(steps) == 1:
        stream = "stream.map.output"
    else:  # the mapper option would also change the shuffle of the earlier steps
        raise ValueError(
            f"{job_cls.__name__}: a map-only last step after other steps cannot publish "
            "its lines unchanged on Hadoop; give it a reducer or run it as its own job"
        )
    return ["--jobconf", f"{stream}={WHOLE_LINE_READER}"]


def _is_part(name):
    return name.startswith("part-")


def _adopt_parts(publication, target):
    """Move the non-empty parts of the job's output directory ``target`` (inside the
    staging directory) up into the publication; remove the rest."""
    fs = publication.fs
    moved = []
    for name in sorted(fs.list(target)):
        path = f"{target.rstrip('/')}/{name}"
        if _is_part(name) and fs.status(path)["length"] > 0:
            fs.rename(path, f"{publication.staging_path.rstrip('/')}/{name}")
            moved.append(name)
    fs.delete(target, recursive=True)
    return moved


def _copy_parts(publication, run):
    """Stream each non-empty part of ``run``'s output into the publication."""
    copied = []
    mr_fs = run._runner.fs
    for path in run.output_parts():
        name = path.rstrip("/").rsplit("/", 1)[-1]
        staged = f"{publication.staging_path.rstrip('/')}/{name}"
        if not is_uri(path) or path.startswith("file://"):
            publication.fs.upload(urlsplit(path).path if is_uri(path) else path, staged)
        else:
            publication.fs.write_lines(staged, _lines_of(mr_fs.cat(path)))
        copied.append(name)
    return copied


def _lines_of(chunks):
    """Text lines (without their newline) of a stream of UTF-8 byte chunks."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode("utf-8")
    if pending:
        yield pending.decode("utf-8")


@contextmanager
def _private_tmp_dir():
    """A fresh 0700 directory for mrjob's local files, removed however the run ends."""
    root = os.environ.get(TMP_ROOT_ENV) or None
    path = tempfile.mkdtemp(prefix="crm-mr-", dir=root)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _ignore_sigint():
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def _workers_ignore_sigint():
    """While active, mrjob's local runner makes pools whose workers ignore SIGINT.

    mrjob 0.7.4 calls ``Pool(processes=...)`` by the name it imported into
    :mod:`mrjob.local`, with no initializer: that name is replaced for the run.
    """
    import functools
    import multiprocessing

    import mrjob.local

    original = mrjob.local.Pool
    mrjob.local.Pool = functools.partial(multiprocessing.Pool, initializer=_ignore_sigint)
    try:
        yield
    finally:
        mrjob.local.Pool = original


@contextmanager
def _run(job, job_name, runner):
    """Run ``job`` once; yield its :class:`JobRun`. Prior validation is assumed."""
    started = time.perf_counter()
    with job.make_runner() as mr_runner:
        if runner == "hadoop":
            from models.mrjob_fs import use_webhdfs

            use_webhdfs(mr_runner)
        try:
            if runner == "spark":
                _run_on_spark(mr_runner, job_name, job.options.output_dir)
            elif runner == "local":
                with _workers_ignore_sigint():
                    mr_runner.run()
            else:
                mr_runner.run()
            yield JobRun(mr_runner, time.perf_counter() - started)
        finally:
            if runner == "spark":
                _remove_spark_tmp_dir(mr_runner)


# -- the spark runner ----------------------------------------------------------------------

_SPARK_OPTS = ("spark_master", "spark_tmp_dir", "spark_submit_bin", "python_bin")


def _spark_opts(job):
    """The spark runner options that matter here, as mrjob combines them: the config
    files first, then the command line. Prior validation is assumed."""
    from mrjob.conf import load_opts_from_mrjob_confs

    conf_log = logging.getLogger("mrjob.conf")
    disabled, conf_log.disabled = conf_log.disabled, True  # the runner warns about them itself
    try:
        confs = [opts for _, opts in load_opts_from_mrjob_confs("spark", job.options.conf_paths)]
    finally:
        conf_log.disabled = disabled
    command_line = {key: getattr(job.options, key, None) for key in (*_SPARK_OPTS, "cmdenv")}
    found = {"cmdenv": {}}
    for opts in [*confs, command_line]:
        for key in _SPARK_OPTS:
            if opts.get(key):
                found[key] = opts[key]
        found["cmdenv"].update(opts.get("cmdenv") or {})
    return found


def _spark_args(job, input_paths):
    """Options to add for a Spark master on this machine (see the module docstring).

    Raises ValueError when ``spark-submit`` or Java cannot be found.
    """
    opts = _spark_opts(job)
    if not opts.get("spark_submit_bin") and not _find_spark_submit():
        raise ValueError(
            "runner='spark' needs spark-submit: pip install 'crm-mapreduce[spark]' "
            "(pyspark), or set SPARK_HOME to a Spark installation"
        )
    master = opts.get("spark_master") or "local[*]"  # mrjob's default
    if not master.startswith("local"):
        return []  # a cluster: mrjob's defaults (an HDFS temp dir, python3) are right there
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and os.path.exists(os.path.join(java_home, "bin", "java"))):
        if not shutil.which("java"):
            raise ValueError(
                f"runner='spark' with spark_master={master!r} needs Java (17 or later) "
                "on PATH or in JAVA_HOME"
            )
    extra = []
    if "SPARK_LOCAL_IP" not in os.environ and "SPARK_LOCAL_IP" not in opts["cmdenv"]:
        extra += ["--cmdenv", "SPARK_LOCAL_IP=127.0.0.1"]
    if not opts.get("python_bin"):
        extra += ["--python-bin", shlex.quote(sys.executable)]
    if not opts.get("spark_tmp_dir"):
        # only an hdfs:// output needs it: with HDFS inputs alone a local temp dir works
        # and saves the four `hadoop fs` calls (about 5 s) an HDFS one costs
        output_dir = job.options.output_dir
        if output_dir and _is_hdfs(output_dir):
            extra += [
                "--spark-tmp-dir",
                f"hdfs://{urlsplit(output_dir).netloc}{SPARK_HDFS_TMP_DIR}",
            ]
    return extra


def _find_spark_submit():
    """Where mrjob will find spark-submit ($SPARK_HOME/bin, PATH, the pyspark package)."""
    import importlib.util

    spark_home = os.environ.get("SPARK_HOME")
    if spark_home and os.path.exists(os.path.join(spark_home, "bin", "spark-submit")):
        return os.path.join(spark_home, "bin", "spark-submit")
    found = shutil.which("spark-submit")
    if found:
        return found
    spec = importlib.util.find_spec("pyspark")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = os.path.join(location, "bin", "spark-submit")
            if os.path.exists(candidate):
                return candidate
    return None


def _is_hdfs(path):
    return urlsplit(path).scheme == "hdfs"


def _run_on_spark(mr_runner, job_name, output_dir):
    """``mr_runner.run()`` with the output directory and the temp directory taken care of."""
    if output_dir and mr_runner.fs.exists(output_dir):
        raise ValueError(
            f"output_dir={output_dir!r} already exists: Spark does not write into an "
            "existing directory; remove it or choose another"
        )
    tmp_dir = getattr(mr_runner, "_spark_tmp_dir", None)
    if tmp_dir and not is_uri(tmp_dir):
        os.makedirs(tmp_dir, exist_ok=True)  # the harness writes its counters there
    with _SparkErrors() as errors:
        try:
            mr_runner.run()
        except BaseException as e:
            if output_dir:
                log.info("removing the output of the failed run, %s", output_dir)
                _remove(mr_runner.fs, output_dir)
            if isinstance(e, StepFailedException):
                raise JobFailedError(
                    reason=f"{job_name} on the spark runner: {errors.cause()}",
                    step_num=e.step_num,
                    num_steps=e.num_steps,
                    step_desc=e.step_desc,
                    last_step_num=e.last_step_num,
                ) from e
            raise


def _remove_spark_tmp_dir(mr_runner):
    """Remove mrjob's per-job Spark temp directory, which mrjob 0.7.4 leaves behind."""
    tmp_dir = getattr(mr_runner, "_spark_tmp_dir", None)
    if tmp_dir:
        _remove(mr_runner.fs, tmp_dir)


def _remove(fs, path):
    """Remove a local directory or a URI; log, do not raise (a cleanup must not hide the
    run's own error)."""
    try:
        if is_uri(path) and not path.startswith("file://"):
            fs.rm(path)
        else:
            local = urlsplit(path).path if path.startswith("file://") else path
            shutil.rmtree(local, ignore_errors=True)
    except Exception as e:  # reported: the run's own outcome matters more
        log.warning("could not remove %s: %s", path, e)


class _SparkErrors(logging.Filter):
    """Collect the exception lines of the Spark driver's log while mrjob runs a step.

    mrjob logs spark-submit's output to ``mrjob.logs.step``, mostly at INFO, and its own
    "probable cause" is often a harmless warning. While active, the logger lets INFO
    through to this filter, which keeps the lines that name an exception and passes on
    only the records the logger would have passed anyway.
    """

    _WRAPPERS = ("py4j.protocol.Py4JJavaError", "org.apache.spark.SparkException")

    def __init__(self):
        super().__init__()
        self._logger = logging.getLogger("mrjob.logs.step")
        self._passes = logging.NOTSET
        self._level = logging.NOTSET
        self.lines = []

    def __enter__(self):
        self._level = self._logger.level
        self._passes = self._logger.getEffectiveLevel()
        if self._passes > logging.INFO:
            self._logger.setLevel(logging.INFO)
        self._logger.addFilter(self)
        return self

    def __exit__(self, *exc):
        self._logger.removeFilter(self)
        self._logger.setLevel(self._level)
        return False

    def filter(self, record):
        if len(self.lines) < 200:
            for line in record.getMessage().splitlines():
                line = line.strip().removeprefix(": ").removeprefix("Caused by: ")
                name, sep, _ = line.partition(": ")
                if sep and name.endswith(("Exception", "Error")) and " " not in name:
                    self.lines.append(line)
        return record.levelno >= self._passes

    def cause(self):
        """The first exception that is not a wrapper, else the first one, shortened."""
        for line in self.lines:
            if not line.startswith(self._WRAPPERS):
                break
        else:
            line = self.lines[0] if self.lines else "see the Spark log (logger mrjob.logs.step)"
        return line if len(line) <= 500 else line[:497] + "..."
