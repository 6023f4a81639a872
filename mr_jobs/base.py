"""What every order-line job shares: input options, line accounting, shipping its code.

Jobs import :mod:`mr_jobs.records`, so the ``mr_jobs`` package must be importable on the
nodes that run their tasks, which have only Python and mrjob. :class:`OrderLineJob` zips
the package when a runner other than ``inline`` is made and passes the zip as a
``py_files`` entry; mrjob's setup wrapper puts it on the tasks' ``PYTHONPATH`` (Hadoop
Streaming, the local runner, Spark and EMR alike). A job that needs more of the project
names its packages in :attr:`CrmJob.SHIP_PACKAGES` (the forecasts job ships ``models``).
"""

import atexit
import gc
import io
import os
import shutil
import tempfile
import zipfile

from mrjob.job import MRJob
from mrjob.protocol import BytesValueProtocol
from mrjob.step import MRStep

from mr_jobs.job_options import add_input_schema_args, schema_from_options
from mr_jobs.records import (
    COUNTER_GROUP_LINES,
    COUNTER_GROUP_OUTPUT,
    COUNTER_GROUP_REJECTED,
    make_basket_parser,
    make_line_parser,
    parse_as_of,
)

__all__ = ["CrmJob", "FeatureFileJob", "OrderLineJob", "package_zip"]

_PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_zip_paths = {}


def package_zip(packages=("mr_jobs",)):
    """Path of a zip of the project's ``packages`` (their ``.py`` files, subpackages
    included), made once per process and set of packages.

    The zip is deleted when the process exits.
    """
    packages = tuple(packages)
    path = _zip_paths.get(packages)
    if path is None or not os.path.exists(path):
        tmp_dir = tempfile.mkdtemp(prefix="crm-mr-jobs-")
        atexit.register(shutil.rmtree, tmp_dir, True)
        path = os.path.join(tmp_dir, "+".join(packages) + ".zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for package in packages:
                _zip_package(zf, package)
        _zip_paths[packages] = path
    return path


def _zip_package(zf, package):
    top = os.path.join(_PROJECT_DIR, package)
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                full = os.path.join(root, name)
                zf.write(full, os.path.relpath(full, _PROJECT_DIR).replace(os.sep, "/"))


class CrmJob(MRJob):
    """Base class of the project's jobs: ships the ``mr_jobs`` package, buffers task
    output, and reports line counters (see :meth:`report_line_counters`)."""

    #: The project's packages the tasks import, zipped and shipped with the job.
    SHIP_PACKAGES = ("mr_jobs",)

    def _buffer_task_output(self):
        """Buffer task output even under ``python -u`` / ``PYTHONUNBUFFERED``.

        mrjob writes each record with two ``write`` calls; on an unbuffered stdout each
        one is a system call, which made tasks 25% slower or more. Tasks run by the inline
        runner are already sandboxed into buffers and are left alone.
        """
        out = self.stdout
        if isinstance(out, io.RawIOBase):
            buffered = io.BufferedWriter(out, buffer_size=1 << 16)
            self.sandbox(stdin=self.stdin, stdout=buffered, stderr=self.stderr)

    def run_mapper(self, step_num=0):
        self._buffer_task_output()
        try:
            super().run_mapper(step_num)
        finally:
            self.stdout.flush()

    def run_combiner(self, step_num=0):
        self._buffer_task_output()
        try:
            super().run_combiner(step_num)
        finally:
            self.stdout.flush()

    def run_reducer(self, step_num=0):
        self._buffer_task_output()
        try:
            super().run_reducer(step_num)
        finally:
            self.stdout.flush()

    def make_runner(self):
        """Make the runner, shipping the ``mr_jobs`` package to the tasks (see module doc)."""
        if (self.options.runner or "inline") != "inline":
            self.options.py_files = list(self.options.py_files or []) + [
                package_zip(self.SHIP_PACKAGES)
            ]
        return super().make_runner()

    @staticmethod
    def pause_gc():
        """Pause the cyclic garbage collector while a task accumulates records.

        In-mapper combining holds millions of small lists and dicts; each collection
        walks all of them, which cost a fifth of the mapper's time. The records hold no
        reference cycles, so nothing leaks; :meth:`resume_gc` turns it back on (the
        inline runner runs tasks inside the driver process).
        """
        gc.disable()

    @staticmethod
    def resume_gc():
        """Turn the cyclic garbage collector back on (see :meth:`pause_gc`)."""
        gc.enable()

    def reject_line(self, reason):
        """Count one line of this task as rejected for ``reason`` (see
        :meth:`report_line_counters`)."""
        self.lines_rejected[reason] = self.lines_rejected.get(reason, 0) + 1

    def count_output(self, count=1, name="rows"):
        """Add ``count`` to the counter ``crm.output`` ``name``: a task counts the rows it
        writes (``rows``, read by :attr:`models.job_runner.JobRun.output_rows`) so that the
        driver never reads an output to know its size."""
        if count:
            self.increment_counter(COUNTER_GROUP_OUTPUT, name, count)

    def report_line_counters(self):
        """Add this task's line counts to the job's counters (call once, at the end).

        Reads ``self.lines_read`` and ``self.lines_rejected`` (reason -> count).
        Counters: ``crm.lines`` read/accepted/rejected and ``crm.rejected`` by reason.
        They are summed over tasks; the driver checks read = accepted + rejected.
        """
        rejected = sum(self.lines_rejected.values())
        self.increment_counter(COUNTER_GROUP_LINES, "read", self.lines_read)
        self.increment_counter(COUNTER_GROUP_LINES, "accepted", self.lines_read - rejected)
        self.increment_counter(COUNTER_GROUP_LINES, "rejected", rejected)
        for reason, count in sorted(self.lines_rejected.items()):
            self.increment_counter(COUNTER_GROUP_REJECTED, reason, count)


class OrderLineJob(CrmJob):
    """Base class of jobs that read order lines.

    Subclasses call :meth:`init_line_parser` (or :meth:`init_basket_parser`) in their
    ``mapper_init`` and :meth:`report_line_counters` for the accounting; raw input lines
    arrive as bytes so that undecodable ones are counted, not crashed on or guessed at.
    Every order-line job takes ``--as-of YYYY-MM-DD``: lines dated after it are rejected
    as ``after_as_of`` (basket lines without a timestamp are not dated, so kept).
    """

    INPUT_PROTOCOL = BytesValueProtocol

    def configure_args(self):
        super().configure_args()
        add_input_schema_args(self.add_passthru_arg)
        self.add_passthru_arg(
            "--as-of",
            default=None,
            help="YYYY-MM-DD: reject the lines dated after it as after_as_of (default: none)",
        )

    def _until_ordinal(self):
        as_of = self.options.as_of
        return None if as_of is None else parse_as_of(as_of)

    def init_line_parser(self, **kwargs):
        """Build ``self.parse_line`` from the options and reset the line counts.

        Keyword arguments go to :func:`mr_jobs.records.make_line_parser`; ``--as-of``
        is applied.
        """
        self.schema = schema_from_options(self.options)
        self.parse_line = make_line_parser(
            self.schema, until_ordinal=self._until_ordinal(), **kwargs
        )
        self.lines_read = 0
        self.lines_rejected = {}

    def init_basket_parser(self, purpose=None):
        """Build ``self.parse_line`` for basket lines
        (:func:`mr_jobs.records.make_basket_parser`, ``--as-of`` applied) and reset the
        line counts; ``purpose`` goes to :func:`mr_jobs.job_options.schema_from_options`."""
        self.schema = schema_from_options(self.options, purpose)
        self.parse_line = make_basket_parser(self.schema, until_ordinal=self._until_ordinal())
        self.lines_read = 0
        self.lines_rejected = {}


class FeatureFileJob(CrmJob):
    """Base class of jobs that work on feature files (:mod:`mr_jobs.points`) with numpy.

    By default a map task gets a whole file (``mapper_raw``) and parses it with pandas'
    C parser. Runners without ``mapper_raw`` (mrjob's Spark runner refuses input
    manifests) take ``--line-input``: the mapper collects its lines and parses them at
    the end of the task. Either way the subclass's :meth:`map_points` gets a source that
    :func:`mr_jobs.points.read_points` reads, and the output is the same.
    """

    INPUT_PROTOCOL = BytesValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg(
            "--line-input",
            action="store_true",
            help="read feature lines one by one (for runners without mapper_raw, e.g. Spark)",
        )

    def points_step(self, **kwargs):
        """An :class:`MRStep` whose mapper feeds :meth:`map_points`; ``kwargs`` add the
        other parts (``mapper_init``, ``reducer``, ...)."""
        if self.options.line_input:
            init = kwargs.pop("mapper_init", None)

            def mapper_init_lines():
                self._lines = []
                if init:
                    init()

            return MRStep(
                mapper_init=mapper_init_lines,
                mapper=self.mapper_collect_line,
                mapper_final=self.mapper_final_points,
                **kwargs,
            )
        return MRStep(mapper_raw=self.mapper_raw_points, **kwargs)

    def mapper_raw_points(self, path, _uri):
        yield from self.map_points(path)

    def mapper_collect_line(self, _, line):
        self._lines.append(line)
        return
        yield

    def mapper_final_points(self):
        source = io.BytesIO(b"\n".join(self._lines))
        self._lines = []
        yield from self.map_points(source)

    def map_points(self, source):
        """Yield the task's output for the points of ``source`` (a path or a buffer)."""
        raise NotImplementedError
