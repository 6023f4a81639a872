"""Run one mrjob job from the driver and account for its input.

The driver never runs a runner from a job's own module: it builds the job with arguments,
runs it once, reads the output and the counters, and checks that every line read was
either accepted or rejected for a counted reason.
"""

import json
import time
from contextlib import contextmanager

from mr_jobs.records import COUNTER_GROUP_LINES, COUNTER_GROUP_REJECTED

__all__ = ["RUNNERS", "JobRun", "AccountingError", "run_job", "line_accounting"]

RUNNERS = ("inline", "local", "hadoop", "emr", "spark")


class AccountingError(RuntimeError):
    """The counters of a run do not add up: lines read != accepted + rejected."""


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
    """A finished run: its output rows, counters and wall time (see :func:`run_job`)."""

    def __init__(self, runner, seconds):
        self._runner = runner
        self.seconds = seconds
        self.counters = runner.counters()
        self.lines = line_accounting(self.counters)

    def rows(self):
        """Iterate over the output, one decoded JSON value per line."""
        for line in self._runner.cat_output():
            line = line.strip()
            if line:
                yield json.loads(line)


@contextmanager
def run_job(job_cls, input_paths, args=(), *, runner="inline", conf_paths=None, progress=None):
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

    Yields
    ------
    JobRun
    """
    if runner not in RUNNERS:
        raise ValueError(f"runner={runner!r} should be one of {RUNNERS}")
    if not input_paths:
        raise ValueError("input_paths is empty: give at least one input file or directory")
    argv = ["-r", runner]
    if conf_paths is not None:
        argv += ["--no-conf"] if not conf_paths else [a for p in conf_paths for a in ("-c", p)]
    argv += list(args) + list(input_paths)
    job = job_cls(args=argv)
    if progress:
        progress(f"running {job_cls.__name__} with the {runner} runner")
    started = time.perf_counter()
    with job.make_runner() as mr_runner:
        mr_runner.run()
        yield JobRun(mr_runner, time.perf_counter() - started)
