"""``crm-mr run``: the whole pipeline, from order lines to published analyses.

Stages, in order, all under one output root (default ``./crm-output/``):

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

import datetime
import json
import os

from hdfs_io import (
    LocalFileSystem,
    check_can_publish,
    get_filesystem,
    is_published,
    join,
    read_manifest,
    redact_secrets,
    write_file_atomically,
)
from hdfs_io.paths import check_disjoint
from models.manifest import Stopwatch, redact, versions
from models.rfm_stage import run_rfm_stage
from models.segments_stage import run_segments_stage
from mr_jobs.records import parse_as_of

__all__ = ["run_pipeline", "ResumeError", "STAGES", "DEFAULT_OUTPUT_ROOT", "RUN_RECORD"]

DEFAULT_OUTPUT_ROOT = "crm-output"
STAGES = (
    "data",
    "rfm",
    "rfm_segments",
    "baskets",
    "recommendations",
    "segments",
    "sales",
    "forecasts",
    "churn",
)
PUBLISHED = STAGES[1:]
DATA_FILE = "transactions.csv"
RUN_RECORD = "_pipeline.json"
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
    generate_options=None,
    basket_options=None,
    kmeans_options=None,
    sales_options=None,
    forecast_options=None,
    churn_options=None,
    reporter=None,
):
    """Run every stage and publish the results under ``output_root``.

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
    generate_options : dict, optional
        Keyword arguments for :func:`models.synthetic.generate` (customers, lines, seed).
    basket_options : dict, optional
        Keyword arguments for :func:`models.baskets_stage.run_baskets_stage`
        (``min_support``, ``min_confidence``, ``top_n``, ...).
    kmeans_options : dict, optional
        Keyword arguments for :func:`models.kmeans_stage.run_kmeans_stage` (``k``,
        ``features``, ``seed``, ...).
    sales_options : dict, optional
        Keyword arguments for :func:`models.sales_stage.run_sales_stage` (``period``,
        ``top_n``).
    forecast_options : dict, optional
        Keyword arguments for :func:`models.forecast_stage.run_forecast_stage`
        (``horizon``, ``value``, ``processes``, ...).
    churn_options : dict, optional
        Keyword arguments for :func:`models.churn_stage.run_churn_stage`
        (``horizon_days``, ``cutoff``, ``seed``, ...).
    reporter : models.progress.Reporter, optional

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
    """
    fs, root = get_filesystem(output_root)
    paths = {stage: join(root, stage) for stage in STAGES}
    data_path = join(paths["data"], DATA_FILE)
    if inputs:
        outputs = [paths[stage] for stage in PUBLISHED] + [join(root, RUN_RECORD)]
        check_disjoint(inputs, [fs.uri(path) for path in outputs])
    _check_options(as_of, kmeans_options, churn_options)
    parameters = _normalised(
        redact(
            {
                "inputs": list(inputs) if inputs else None,
                "schema": schema.to_dict() if schema is not None else None,
                "as_of": as_of,
                "period": period,
                "generate": generate_options or None,
                "baskets": basket_options or None,
                "segments": kmeans_options or None,
                "sales": sales_options or None,
                "forecasts": forecast_options or None,
                "churn": churn_options or None,
            }
        )
    )
    input_sizes = _input_sizes(inputs) if inputs else None
    say = reporter.progress("run") if reporter else (lambda message: None)

    done = {}
    if resume:
        previous = _read_record(fs, join(root, RUN_RECORD))
        if previous is None:
            say(f"nothing to resume: no {RUN_RECORD} under {fs.uri(root)}; running every stage")
        else:
            _check_same_run(previous, parameters, input_sizes)
            done = _completed_prefix(fs, paths, data_path, previous, generated=not inputs)
            if done:
                say(f"resuming: {', '.join(done)} completed by the previous run, kept")
    for stage in PUBLISHED:
        if stage not in done:
            check_can_publish(fs, paths[stage], overwrite)
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
        "resumed_stages": list(done),
        "versions": versions(),
        "stages": [],
    }
    record_path = join(root, RUN_RECORD)
    _write_record(fs, record_path, record)
    context = {
        "fs": fs,
        "paths": paths,
        "data_path": data_path,
        "inputs": list(inputs) if inputs else None,
        "schema": schema,
        "runner": runner,
        "as_of": as_of,
        "period": period,
        "overwrite": overwrite,
        "conf_paths": conf_paths,
        "reporter": reporter,
        "options": {
            "generate": generate_options or {},
            "baskets": basket_options or {},
            "segments": kmeans_options or {},
            "sales": sales_options or {},
            "forecasts": forecast_options or {},
            "churn": churn_options or {},
        },
    }
    for stage in STAGES:
        if stage == "recommendations":
            continue  # run and recorded with the baskets
        if stage == "data" and inputs:
            _use_inputs(context)
            continue
        try:
            if stage in done:
                entries = _resume_stage(stage, context, done)
            else:
                entries = _RUN[stage](context)
        except BaseException as e:
            status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            record.update(status=status, failed_stage=stage, error=_describe(e))
            record["timings"] = watch.as_dict()
            _write_record(fs, record_path, record)
            raise
        record["stages"].extend(entries)
        _write_record(fs, record_path, record)
    record["status"] = "completed"
    record["timings"] = watch.as_dict()
    _write_record(fs, record_path, record)
    say(f"done in {record['timings']['seconds']:.1f} s; results under {fs.uri(root)}")
    return record


def _check_options(as_of, kmeans_options, churn_options):
    """Refuse bad options of the later stages before the first stage runs (a ValueError
    naming the value), so that a bad ``--k`` or ``--churn-horizon-days`` costs no work."""
    from models.churn_stage import check_options as check_churn
    from models.kmeans_stage import check_options as check_kmeans

    if as_of is not None:
        parse_as_of(as_of)
    check_kmeans(**(kmeans_options or {}))
    check_churn(as_of=as_of, **(churn_options or {}))


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


def _completed_prefix(fs, paths, data_path, previous, *, generated):
    """``{stage: previous entry}`` for the leading stages the previous run completed."""
    entries = {e["stage"]: e for e in previous.get("stages", [])}
    done = {}
    for stage in STAGES:
        if stage == "data" and not generated:
            continue
        entry = entries.get(stage)
        if entry is None or entry.get("status") not in _DONE:
            break
        if entry["status"] == "completed":
            if stage == "data":
                from models.data_stage import data_files

                present = all(fs.exists(f) for f in data_files(data_path))
            else:
                present = is_published(fs, paths[stage])
            if not present:
                break
        done[stage] = entry
    if "baskets" in done and "recommendations" not in done:
        del done["baskets"]  # one stage publishes both
    return done


def _describe(error):
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:500]


def _stage_entry(stage, path, manifest):
    return {
        "stage": stage,
        "status": "completed",
        "output": path,
        "lines": manifest["lines"],
        "rows_written": manifest["rows_written"],
        "seconds": manifest["timings"]["seconds"],
    }


def _skipped(stage, reason):
    return {"stage": stage, "status": "skipped", "output": None, "skipped": reason}


def _skip(context, stage, reason):
    """Report ``stage`` as skipped for ``reason``; its run-record entry."""
    if context["reporter"]:
        context["reporter"].progress(stage)(f"skipped: {reason}")
    return _skipped(stage, reason)


def _no_customer_reason(context):
    """Why a stage that needs customers is skipped: the RFM run accepted no line."""
    lines = context.get("rfm_lines") or {}
    reason = "no accepted customer in the input"
    if lines:
        reason += (
            f" (lines read={lines['read']}, rejected by reason: {lines['rejected_by_reason']})"
        )
    return reason


# -- stages ------------------------------------------------------------------------------------


def _uri(context, stage):
    return context["fs"].uri(context["paths"][stage])


def _use_inputs(context):
    if context["schema"] is None:
        from models.inputs import detect_schema

        context["schema"] = detect_schema(context["inputs"])


def _run_data(context):
    """Generate the built-in log (see :mod:`models.data_stage`)."""
    from models.data_stage import generate_data

    fs, data_path = context["fs"], context["data_path"]
    truth = generate_data(
        fs.uri(data_path),
        context["options"]["generate"],
        overwrite=context["overwrite"],
        reporter=context["reporter"],
    )
    _after_data(context)
    keys = ("seed", "n_customers", "lines_total", "rejects_by_reason")
    return [
        {
            "stage": "data",
            "status": "completed",
            "output": fs.uri(data_path),
            "lines": None,
            "rows_written": truth["lines_total"],
            "seconds": truth["seconds"],
            "truth": {k: truth[k] for k in keys},
        }
    ]


def _after_data(context):
    context["inputs"] = [context["fs"].uri(context["data_path"])]
    context["schema"] = None
    _use_inputs(context)


def _run_rfm(context):
    manifest = run_rfm_stage(
        context["inputs"],
        _uri(context, "rfm"),
        schema=context["schema"],
        runner=context["runner"],
        as_of=context["as_of"],
        period=context["period"],
        overwrite=context["overwrite"],
        conf_paths=context["conf_paths"],
        reporter=context["reporter"],
    )
    _after_rfm(context, manifest)
    return [_stage_entry("rfm", _uri(context, "rfm"), manifest)]


def _after_rfm(context, manifest):
    """What later stages need of the RFM stage: its manifest's figures, no rows."""
    context["rfm_details"] = manifest["details"]
    context["rfm_lines"] = manifest["lines"]


def _customers(context):
    return context["rfm_details"].get("customers", 0)


def _run_rfm_segments(context):
    _summary, manifest = run_segments_stage(
        _uri(context, "rfm"),
        _uri(context, "rfm_segments"),
        runner=context["runner"],
        conf_paths=context["conf_paths"],
        overwrite=context["overwrite"],
        reporter=context["reporter"],
    )
    return [_stage_entry("rfm_segments", _uri(context, "rfm_segments"), manifest)]


def _run_baskets(context):
    schema = context["schema"]
    if not (schema.has("order_id") and schema.has("item_id")):
        reason = f"columns={list(schema.columns)!r} have no order_id and item_id to make baskets"
        return [_skipped("baskets", reason), _skipped("recommendations", reason)]
    from models.baskets_stage import run_baskets_stage

    manifest = run_baskets_stage(
        context["inputs"],
        _uri(context, "baskets"),
        schema=schema,
        recommendations_path=_uri(context, "recommendations"),
        as_of=context["as_of"],
        runner=context["runner"],
        overwrite=context["overwrite"],
        conf_paths=context["conf_paths"],
        reporter=context["reporter"],
        **context["options"]["baskets"],
    )
    rec = manifest["details"]["recommendations"]
    return [
        _stage_entry("baskets", _uri(context, "baskets"), manifest),
        {
            "stage": "recommendations",
            "status": "completed",
            "output": rec["output"],
            "lines": manifest["lines"],
            "rows_written": rec["rows_written"],
            "seconds": rec["seconds"],
        },
    ]


def _run_segments(context):
    """The K-Means segments stage; recorded as skipped when there are fewer distinct
    customers than any ``k`` asked for (a pipeline on a tiny input still completes)."""
    from models.kmeans import TooFewPointsError
    from models.kmeans_stage import run_kmeans_stage

    if not _customers(context):
        return [_skip(context, "segments", _no_customer_reason(context))]
    try:
        manifest = run_kmeans_stage(
            [_uri(context, "rfm_segments")],
            _uri(context, "segments"),
            runner=context["runner"],
            conf_paths=context["conf_paths"],
            overwrite=context["overwrite"],
            reporter=context["reporter"],
            **context["options"]["segments"],
        )
    except TooFewPointsError as e:
        if context["reporter"]:
            context["reporter"].progress("segments")(f"skipped: {e}")
        return [_skipped("segments", str(e))]
    return [_stage_entry("segments", _uri(context, "segments"), manifest)]


def _run_sales(context):
    from models.sales_stage import run_sales_stage

    options = context["options"]["sales"]
    series, manifest = run_sales_stage(
        context["inputs"],
        _uri(context, "sales"),
        schema=context["schema"],
        as_of=context["as_of"],
        runner=context["runner"],
        conf_paths=context["conf_paths"],
        overwrite=context["overwrite"],
        reporter=context["reporter"],
        **options,
    )
    context["series"] = series
    context["sales_period"] = manifest["details"]["period"]
    return [_stage_entry("sales", _uri(context, "sales"), manifest)]


def _data_span(details, as_of=None, lines=None):
    """(first, last) days the accepted lines cover, from the RFM manifest's details.

    The span runs from the first to the last purchase date, except that a log cut by
    ``as_of`` (the RFM run rejected lines as ``after_as_of``) covers every day up to
    ``as_of``, purchase or not.
    """
    if not details or not details.get("last_purchase_date"):
        return None
    first, last = details["first_purchase_date"], details["last_purchase_date"]
    cut = as_of is not None and lines and lines["rejected_by_reason"].get("after_as_of", 0) > 0
    if cut:
        last = max(last, datetime.date.fromordinal(parse_as_of(as_of)).isoformat())
    return first, last


def _run_forecasts(context):
    from models.forecast_stage import run_forecast_stage

    _result, manifest = run_forecast_stage(
        context["series"],
        _uri(context, "forecasts"),
        period=context["sales_period"],
        data_span=_data_span(context["rfm_details"], context["as_of"], context.get("rfm_lines")),
        source=_uri(context, "sales"),
        overwrite=context["overwrite"],
        reporter=context["reporter"],
        **context["options"]["forecasts"],
    )
    return [_stage_entry("forecasts", _uri(context, "forecasts"), manifest)]


def _run_churn(context):
    """The churn stage; recorded as skipped when either class has too few customers."""
    from models.churn_stage import TooFewCustomersError, run_churn_stage

    if not _customers(context):
        return [_skip(context, "churn", _no_customer_reason(context))]
    try:
        _scored, _model, manifest = run_churn_stage(
            context["inputs"],
            _uri(context, "churn"),
            schema=context["schema"],
            current_path=_uri(context, "rfm"),
            as_of=context["as_of"],
            runner=context["runner"],
            conf_paths=context["conf_paths"],
            overwrite=context["overwrite"],
            reporter=context["reporter"],
            **context["options"]["churn"],
        )
    except TooFewCustomersError as e:
        if context["reporter"]:
            context["reporter"].progress("churn")(f"skipped: {e}")
        return [_skipped("churn", str(e))]
    return [_stage_entry("churn", _uri(context, "churn"), manifest)]


_RUN = {
    "data": _run_data,
    "rfm": _run_rfm,
    "rfm_segments": _run_rfm_segments,
    "baskets": _run_baskets,
    "segments": _run_segments,
    "sales": _run_sales,
    "forecasts": _run_forecasts,
    "churn": _run_churn,
}


def _resume_stage(stage, context, done):
    """The previous run's entries of ``stage``; what later stages need, read back."""
    entries = [{**done[stage], "resumed": True}]
    if stage == "baskets":
        entries.append({**done["recommendations"], "resumed": True})
    if context["reporter"]:
        context["reporter"].progress(stage)(
            f"completed by the previous run: {done[stage]['status']}"
        )
    if stage == "data":
        _after_data(context)
    elif stage == "rfm":
        _after_rfm(context, read_manifest(context["fs"], context["paths"]["rfm"]))
    elif stage == "sales":
        from models.forecast_stage import read_sales_series

        context["series"], context["sales_period"] = read_sales_series(_uri(context, "sales"))
    return entries
