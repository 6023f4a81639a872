"""The stage skeleton: what every stage of ``crm-mr run`` declares, and its run context.

A stage (:class:`Stage`) declares

- ``name``: its directory under the output root and its entry in ``_pipeline.json``
  (``publishes`` lists every directory it publishes, when it is more than one);
- ``options``: its options (:class:`Option`), each declared once with its default and
  help, from which both its own ``crm-mr`` command and ``crm-mr run`` build their flags;
- ``needs`` / ``provides``: the results it reads from earlier stages and leaves for later
  ones in :attr:`RunContext.results` (small figures, never per-customer rows: the RFM
  manifest's details, the sales series);
- ``check(options, run)``: refuses bad options before the first stage of a run does any
  work (a ``ValueError`` naming the value);
- ``skip_reason(run)``: why it cannot run on this input (recorded as skipped), or None;
- ``compute(run)``: runs it; returns its run-record entries;
- ``load(run, entries)``: on ``--resume``, reads back from its published output what the
  later stages need (its ``provides``).

:mod:`models.stages` holds the registry, in run order; :func:`models.pipeline.run_pipeline`
and :mod:`models.cli` are driven by it. Adding a stage is one module and one line there.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

from hdfs_io import is_published

__all__ = ["Option", "RunContext", "Stage", "stage_entry", "skipped_entry", "skipped_for"]

_UNSET = object()


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of a stage: its keyword, its flags and its one default.

    Parameters
    ----------
    key : str
        The keyword of the stage's runner (e.g. ``top_n`` of
        :func:`models.sales_stage.run_sales_stage`).
    flag : str
        The flag in the stage's own command (``crm-mr sales --top-n``).
    run_flag : str, optional
        The flag in ``crm-mr run`` (``--sales-top-n``); default: ``flag``.
    default : object
        The default; None with ``omit_none`` leaves the choice to the runner (a default
        that depends on the data, such as the forecast horizon).
    type, choices, metavar, help
        As for :meth:`argparse.ArgumentParser.add_argument`; ``help`` may use
        ``%(default)s``.
    negate : bool
        A switch that turns the option off: ``--no-itemsets`` gives ``itemsets=False``;
        its default is True.
    omit_none : bool
        Pass nothing to the runner when the value is None.
    to_value : callable, optional
        Turns the parsed value into the runner's (``--max-itemset-size 0`` is no limit).
    """

    key: str
    flag: str
    run_flag: str | None = None
    default: Any = None
    type: Callable | None = None
    choices: tuple | None = None
    metavar: str | None = None
    help: str = ""
    negate: bool = False
    omit_none: bool = False
    to_value: Callable | None = None

    def dest(self, stage):
        """The argparse destination of this option of ``stage``."""
        return f"{stage}__{self.key}"

    def add_to(self, parser, stage, *, in_run):
        """Add this option to ``parser`` (``in_run``: with its ``crm-mr run`` flag)."""
        flag = (self.run_flag or self.flag) if in_run else self.flag
        kwargs = {"dest": self.dest(stage), "help": self.help}
        if self.negate:
            parser.add_argument(flag, action="store_true", **kwargs)
            return
        for name in ("type", "choices", "metavar"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        parser.add_argument(flag, default=self.default, **kwargs)

    def value(self, args, stage):
        """This option's value for the runner from parsed ``args``, or ``_UNSET``."""
        value = getattr(args, self.dest(stage))
        if self.negate:
            return not value
        if value is None and self.omit_none:
            return _UNSET
        return self.to_value(value) if self.to_value else value


@dataclasses.dataclass
class RunContext:
    """What the stages of one ``crm-mr run`` share.

    ``paths`` maps every published directory name to its path under the output root;
    ``options`` maps a stage's :attr:`Stage.options_key` to its keyword arguments;
    ``results`` holds what stages provide to later ones (:attr:`Stage.provides`).
    """

    fs: Any
    paths: dict
    data_path: str
    inputs: list | None
    schema: Any
    runner: str
    as_of: str | None
    period: str
    overwrite: bool
    conf_paths: list | None
    reporter: Any
    options: dict
    generated: bool
    results: dict = dataclasses.field(default_factory=dict)

    def uri(self, name):
        """The URI of the published directory ``name``."""
        return self.fs.uri(self.paths[name])

    def say(self, stage, message):
        """Report ``message`` as progress of ``stage`` (nothing without a reporter)."""
        if self.reporter:
            self.reporter.progress(stage)(message)

    def jobs(self):
        """The keyword arguments every stage runner takes for its jobs and publication."""
        return {
            "runner": self.runner,
            "conf_paths": self.conf_paths,
            "overwrite": self.overwrite,
            "reporter": self.reporter,
        }


class Stage:
    """A stage of ``crm-mr run`` (see the module docstring)."""

    name = ""
    #: The function that does its work, as ``"module:function"`` (its keyword defaults
    #: are the options' defaults).
    runner = ""
    #: Every directory it publishes (default: its name).
    publishes = ()
    #: Its key in ``run_pipeline``'s ``stage_options`` and the run record's parameters.
    options_key = None
    options = ()
    needs = ()
    provides = ()

    def runner_function(self):
        """The function named by :attr:`runner` (imported now)."""
        import importlib

        module, _, function = self.runner.partition(":")
        return getattr(importlib.import_module(module), function)

    def outputs(self):
        """The directories this stage publishes under the output root."""
        return tuple(self.publishes) or (self.name,)

    def records(self, run):
        """Whether this stage runs (and is recorded) in ``run``."""
        return True

    def check(self, options, run):
        """Refuse bad ``options`` (a ``ValueError`` naming the value) before any work."""

    def skip_reason(self, run):
        """Why this stage cannot run on this input, or None."""
        return None

    def compute(self, run):
        """Run the stage; return its run-record entries (:func:`stage_entry`)."""
        raise NotImplementedError

    def load(self, run, entries):
        """On resume: read back from the published output what later stages need."""

    def is_kept(self, run, entry):
        """Whether the previous run's ``entry`` still stands (its outputs published)."""
        if entry["status"] != "completed":
            return True
        return all(is_published(run.fs, run.paths[name]) for name in self.outputs())

    def options_of(self, run):
        """The keyword arguments of this stage's options in ``run``."""
        return run.options.get(self.options_key, {}) if self.options_key else {}

    def options_from_args(self, args):
        """The runner's keyword arguments from parsed CLI ``args``."""
        out = {}
        for option in self.options:
            value = option.value(args, self.name)
            if value is not _UNSET:
                out[option.key] = value
        return out

    def add_options(self, parser, *, in_run=False):
        """Add this stage's options to ``parser`` (its own command's, or ``crm-mr run``'s)."""
        for option in self.options:
            option.add_to(parser, self.name, in_run=in_run)


def stage_entry(stage, output, manifest):
    """The run-record entry of a completed stage from its manifest."""
    return {
        "stage": stage,
        "status": "completed",
        "output": output,
        "lines": manifest["lines"],
        "rows_written": manifest["rows_written"],
        "seconds": manifest["timings"]["seconds"],
    }


def skipped_entry(stage, reason):
    """The run-record entry of a stage skipped for ``reason``."""
    return {"stage": stage, "status": "skipped", "output": None, "skipped": reason}


def skipped_for(run, stage, error):
    """Say and record that ``stage`` is skipped because of ``error`` (the data cannot
    support it: too few customers, a model the data do not identify)."""
    run.say(stage, f"skipped: {error}")
    return [skipped_entry(stage, str(error))]
