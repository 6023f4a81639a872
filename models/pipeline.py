"""``crm-mr run``: the whole pipeline, from order lines to published analyses.

The stages are those of the registry :data:`models.stages.REGISTRY`, run in its order
(each declares its options, what it needs and provides, and how it resumes; see
:mod:`models.stages.base`). They publish under one output root (default
``./crm-output/``):

====================  ==================================================================
``data/``             only without ``--input``: the built-in synthetic log
                      (``transactions.csv``) and the ground truth it planted
``rfm/``              per-customer RFM rows (:mod:`models.rfm_stage`)
``rfm_segments/``     RFM scores, value tiers and named segments
                      (:mod:`models.segments_stage`)
``baskets/``          frequent items, pairs and itemsets, association rules
                      (:mod:`models.baskets_stage`); only when the input has an order
                      (basket) and an item column, otherwise recorded as skipped
``recommendations/``  item-to-item and per-customer recommendations (same condition)
``segments/``         behavioural segments by distributed K-Means over the RFM rows,
                      profiled, named and compared with the RFM segments
                      (:mod:`models.kmeans_stage`); skipped when there are fewer
                      customers than clusters
``sales/``            regular sales series per day or week, in total and for the top-N
                      items by revenue, the rest grouped (:mod:`models.sales_stage`)
``forecasts/``        one ARIMA per sales series: forecasts with prediction intervals,
                      backtest metrics against the seasonal naive
                      (:mod:`models.forecast_stage`)
``churn/``            churn model trained by a cutoff and a horizon, every current
                      customer scored, the early-warning list, the model itself
                      (:mod:`models.churn_stage`); skipped when there are too few
                      customers of either class to train on
``_pipeline.json``    the run: parameters, status (running, completed, failed or
                      interrupted, with the stage and the error), and per stage its
                      output, rows and seconds; rewritten after every stage
``report.html``       the report for people, one offline HTML file written at the end
                      (also of a failed run) from the published summaries
                      (:mod:`models.report`)
====================  ==================================================================

Every stage publishes atomically (:class:`hdfs_io.Publication`): its directory, with
``_manifest.json`` and ``_SUCCESS``, appears only when complete, so a stage that fails
leaves nothing behind but staging directories that the next publication ignores.

Nothing is replaced unless ``overwrite`` is set; the check happens for every stage before
the first one runs, so a refused run changes nothing.

Resuming
--------
With ``resume``, a rerun after a failure (or an interruption) skips the stages that the
previous run completed: the longest run of stages, from the first, that
``_pipeline.json`` records as completed (or skipped) and whose output is still published.
Every stage from the first one not completed runs again, and the later stages with it
(their inputs may change). The later stages' outputs of older runs are refused as usual
unless ``overwrite`` is also set. Resuming is refused (:class:`ResumeError`, naming what
differs) when the parameters or the inputs differ from the previous run's (their paths,
sizes and a cheap fingerprint: each file's modification time, and for local files a hash
of the first and last 64 KiB, so an input edited in place with the same size is seen):
a resumed run must give what one uninterrupted run would. The runner and the number of
forecasting processes may differ, since they do not change the results. The
results of a kept stage that later stages need (the RFM rows, the scored customers, the
sales series) are read back from its published output.
"""

import json
import os

from hdfs_io import (
    LocalFileSystem,
    check_can_publish,
    get_filesystem,
    join,
    redact_secrets,
    write_file_atomically,
)
from hdfs_io.paths import check_disjoint
from models.manifest import Stopwatch, redact, versions
from models.stages import REGISTRY, RunContext, published, skipped_entry
from mr_jobs.records import parse_as_of

__all__ = ["run_pipeline", "ResumeError", "STAGES", "DEFAULT_OUTPUT_ROOT", "RUN_RECORD"]

DEFAULT_OUTPUT_ROOT = "crm-output"
#: Every directory a run publishes under its root, in run order (:data:`models.stages.REGISTRY`).
STAGES = published()
PUBLISHED = STAGES[1:]
DATA_FILE = "transactions.csv"
RUN_RECORD = "_pipeline.json"
#: The report's name under the output root (:mod:`models.report`).
REPORT_FILE = "report.html"
_DONE = ("completed", "skipped")


class ResumeError(ValueError):
    """``resume`` was asked for a run whose parameters or inputs differ from the previous."""


def run_pipeline(
    output_root=DEFAULT_OUTPUT_ROOT,
    *,
    inputs=None,
    schema=None,
    runner="inline",
    as_of=None,
    period="D",
    overwrite=False,
    resume=False,
    conf_paths=None,
    stage_options=None,
    reporter=None,
    report=True,
):
    """Run every stage of :data:`models.stages.REGISTRY` and publish under ``output_root``.

    Parameters
    ----------
    output_root : str
        Local path or ``hdfs://`` URI.
    inputs : list of str, optional
        Order-line files or directories; default: generate the built-in data.
    schema : mr_jobs.records.InputSchema, optional
        How to read ``inputs`` (default canonical; the generated data is canonical).
    runner, as_of, period, conf_paths
        As for :func:`models.rfm_stage.run_rfm_stage`.
    overwrite : bool
        Replace existing results.
    resume : bool
        Skip the stages the previous run with the same parameters completed (see the
        module docstring).
    stage_options : dict, optional
        Keyword arguments of each stage's runner by its ``options_key``: ``generate``
        (:func:`models.synthetic.generate`: customers, lines, seed), ``baskets``,
        ``segments`` (K-Means), ``sales``, ``forecasts``, ``churn``; their options and
        defaults are declared by the stages (:mod:`models.stages`).
    reporter : models.progress.Reporter, optional
    report : bool
        Write ``<output_root>/report.html`` (:func:`models.report.build_report`) at the
        end, also when a stage failed (then it says which and why; an error of the report
        itself is only reported, so that the stage's error is the one raised).

    Returns
    -------
    dict
        The run record also written to ``<output_root>/_pipeline.json``.

    Raises
    ------
    ResumeError
        With ``resume``, when the parameters or inputs differ from the previous run's.
    hdfs_io.PathExists, hdfs_io.UnsafePathError
        Before any stage runs, when a result exists and ``overwrite`` is not set.
    hdfs_io.paths.OverlappingPathsError
        Before any stage runs, when an input is, contains or lies inside a stage's output.
    ValueError
        Before any stage runs, naming a bad option of any stage.
    """
    fs, root = get_filesystem(output_root)
    paths = {name: join(root, name) for name in STAGES}
    data_path = join(paths["data"], DATA_FILE)
    if inputs:
        outputs = [paths[name] for name in PUBLISHED] + [join(root, RUN_RECORD)]
        outputs += [join(root, REPORT_FILE)] if report else []
        check_disjoint(inputs, [fs.uri(path) for path in outputs])
    stage_options = {k: dict(v) for k, v in (stage_options or {}).items() if v}
    run = RunContext(
        fs=fs,
        paths=paths,
        data_path=data_path,
        inputs=list(inputs) if inputs else None,
        schema=schema,
        runner=runner,
        as_of=as_of,
        period=period,
        overwrite=overwrite,
        conf_paths=conf_paths,
        reporter=reporter,
        options=stage_options,
        generated=not inputs,
    )
    _check_options(run)
    parameters = _run_parameters(run)
    input_sizes = _input_sizes(inputs) if inputs else None
    say = reporter.progress("run") if reporter else (lambda message: None)
    record_path = join(root, RUN_RECORD)
    done = _resumable(run, record_path, parameters, input_sizes, say) if resume else {}
    kept = [e["stage"] for entries in done.values() for e in entries]
    for name in PUBLISHED:
        if name not in kept:
            check_can_publish(fs, paths[name], overwrite)
    if not inputs and "data" not in done and fs.exists(data_path) and not overwrite:
        check_can_publish(fs, paths["data"], overwrite)

    watch = Stopwatch()
    record = {
        "tool": "crm-mapreduce",
        "output_root": fs.uri(root),
        "runner": runner,
        "status": "running",
        "parameters": parameters,
        "inputs": input_sizes,
        "resumed_stages": list(kept),
        "versions": versions(),
        "stages": [],
    }
    _write_record(fs, record_path, record)
    for stage in REGISTRY:
        try:
            entries = _run_stage(stage, run, done)
        except BaseException as e:
            status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            record.update(status=status, failed_stage=stage.name, error=_describe(e))
            record["timings"] = watch.as_dict()
            _write_record(fs, record_path, record)
            if report and status == "failed":
                _failed_run_report(fs.uri(root), say)
            raise
        record["stages"].extend(entries)
        _write_record(fs, record_path, record)
    record["status"] = "completed"
    record["timings"] = watch.as_dict()
    _write_record(fs, record_path, record)
    say(f"done in {record['timings']['seconds']:.1f} s; results under {fs.uri(root)}")
    if report:
        _write_report(fs.uri(root), say)
    return record


def _write_report(root_uri, say):
    from models.report import build_report

    watch = Stopwatch()
    uri, size = build_report(root_uri)
    say(f"report {uri} ({size:,} bytes, {watch.as_dict()['seconds']:.1f} s)")


def _failed_run_report(root_uri, say):
    """The report of a failed run; its own error is only said (the stage's is raised)."""
    try:
        _write_report(root_uri, say)
    except Exception as e:  # noqa: BLE001 - the stage's error is the one that matters
        say(f"no report: {_describe(e)}")


def _run_parameters(run):
    """The run's parameters as recorded (credentials redacted) and compared on resume."""
    options = run.options
    return _normalised(
        redact(
            {
                "inputs": run.inputs,
                "schema": run.schema.to_dict() if run.schema is not None else None,
                "as_of": run.as_of,
                "period": run.period,
                **{
                    stage.options_key: options.get(stage.options_key) or None
                    for stage in REGISTRY
                    if stage.options_key
                },
            }
        )
    )


def _resumable(run, record_path, parameters, input_sizes, say):
    """The stages a previous run with the same parameters completed, by name."""
    fs = run.fs
    previous = _read_record(fs, record_path)
    if previous is None:
        say(f"nothing to resume: no {RUN_RECORD} at {fs.uri(record_path)}; running every stage")
        return {}
    _check_same_run(previous, parameters, input_sizes)
    done = _completed_prefix(run, previous)
    if done:
        say(f"resuming: {', '.join(done)} completed by the previous run, kept")
    return done


def _run_stage(stage, run, done):
    """Run, skip or (on resume) keep ``stage``; its run-record entries."""
    if stage.name in done:
        return _resume_stage(stage, run, done[stage.name])
    reason = stage.skip_reason(run) if stage.records(run) else None
    if reason is not None:
        run.say(stage.name, f"skipped: {reason}")
        return [skipped_entry(name, reason) for name in stage.outputs()]
    return stage.compute(run)


def _check_options(run):
    """Refuse bad options of every stage before the first one runs (a ValueError naming
    the value), so that a bad ``--k`` or ``--churn-horizon-days`` costs no work."""
    if run.as_of is not None:
        parse_as_of(run.as_of)
    for stage in REGISTRY:
        stage.check(stage.options_of(run), run)


# -- the run record --------------------------------------------------------------------------


def _normalised(value):
    """``value`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(value))


def _input_sizes(inputs):
    """Each input's URI, size and :func:`_fingerprint`, as the run record keeps them."""
    from models.inputs import describe_inputs

    described = describe_inputs(inputs)
    for entry, path in zip(described, inputs, strict=True):
        entry["fingerprint"] = _fingerprint(*get_filesystem(path))
    return described


_EDGE_BYTES = 65536


def _fingerprint(fs, path):
    """A cheap fingerprint of an input file or directory (its visible files, as Hadoop
    reads them): a SHA-256 of each file's name, length and modification time, and for a
    local file of its first and last 64 KiB, so that an edit in place that keeps the size
    is seen. Prior validation (the input exists) is assumed."""
    import hashlib

    from models.inputs import data_files

    digest = hashlib.sha256()
    if fs.status(path)["type"] == "DIRECTORY":
        files = [(p.rsplit("/", 1)[-1], p) for p in data_files(fs, path)]
    else:
        files = [("", path)]
    for name, file_path in files:
        status = fs.status(file_path)
        digest.update(f"{name}\0{status['length']}\0{status['modificationTime']}\0".encode())
        if isinstance(fs, LocalFileSystem) and status["type"] == "FILE":
            digest.update(_local_edges(file_path, status["length"]))
    return digest.hexdigest()


def _local_edges(path, size):
    """The first and last :data:`_EDGE_BYTES` of a local file, and its mtime in ns."""
    with open(path, "rb") as f:
        head = f.read(_EDGE_BYTES)
        f.seek(max(0, size - _EDGE_BYTES))
        tail = f.read(_EDGE_BYTES)
        mtime_ns = os.fstat(f.fileno()).st_mtime_ns
    return head + tail + str(mtime_ns).encode()


def _read_record(fs, path):
    if not fs.exists(path):
        return None
    try:
        return json.loads(fs.read(path).decode("utf-8"))
    except ValueError as e:
        raise ResumeError(f"cannot resume: {fs.uri(path)} is not valid JSON ({e})") from None


def _write_record(fs, path, record):
    text = json.dumps(redact_secrets(record), indent=2)
    write_file_atomically(fs, path, lambda tmp: fs.write(tmp, text), overwrite=True)


def _comparable(parameters):
    """The parameters that shape the results (not the forecasts' worker processes)."""
    out = dict(parameters)
    if isinstance(out.get("forecasts"), dict):
        out["forecasts"] = {k: v for k, v in out["forecasts"].items() if k != "processes"}
    return out


def _check_same_run(previous, parameters, input_sizes):
    before = _comparable(previous.get("parameters") or {})
    parameters = _comparable(parameters)
    changed = sorted(k for k in set(before) | set(parameters) if before.get(k) != parameters.get(k))
    if changed:
        shown = ", ".join(f"{k}: {before.get(k)!r} -> {parameters.get(k)!r}" for k in changed)
        raise ResumeError(
            f"cannot resume: the parameters differ from the previous run's ({shown}); "
            "rerun with the same parameters, or without --resume (and with --overwrite)"
        )
    before = previous.get("inputs")
    if before != input_sizes:
        raise ResumeError(
            f"cannot resume: {_what_changed(before, input_sizes)}; rerun without --resume"
        )


def _what_changed(before, now):
    """The first difference between two runs' inputs, named."""
    before, now = before or [], now or []
    if [e.get("path") for e in before] != [e["path"] for e in now]:
        was, then = [e.get("path") for e in before], [e["path"] for e in now]
        return f"the inputs differ from the previous run's (was {was!r}, now {then!r})"
    for old, new in zip(before, now, strict=True):
        if old.get("bytes") != new["bytes"]:
            return f"input {new['path']} changed size ({old.get('bytes')} -> {new['bytes']} bytes)"
        if old.get("fingerprint") != new["fingerprint"]:
            return (
                f"input {new['path']} changed since the previous run (same size, other "
                "modification time or content)"
            )
    return "the inputs differ from the previous run's"


def _completed_prefix(run, previous):
    """``{stage name: previous entries}`` for the leading stages the previous run
    completed (or skipped) whose outputs are still published."""
    entries = {e["stage"]: e for e in previous.get("stages", [])}
    done = {}
    for stage in REGISTRY:
        if not stage.records(run):
            continue
        found = [entries.get(name) for name in stage.outputs()]
        if any(e is None or e.get("status") not in _DONE for e in found):
            break
        if not stage.is_kept(run, found[0]):
            break
        done[stage.name] = found
    return done


def _describe(error):
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:500]


def _resume_stage(stage, run, entries):
    """The previous run's ``entries`` of ``stage``; what later stages need, read back."""
    run.say(stage.name, f"completed by the previous run: {entries[0]['status']}")
    if entries[0]["status"] == "completed":
        stage.load(run, entries)
    return [{**e, "resumed": True} for e in entries]
