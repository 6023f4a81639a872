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
                      (:mod:`models.kmeans_stage`)
``sales/``            regular sales series per day or week, in total and for the top-N
                      items by revenue, the rest grouped (:mod:`models.sales_stage`)
``_pipeline.json``    the run: stages, their outputs, rows and seconds
====================  ==================================================================

Nothing is replaced unless ``overwrite`` is set; the check happens for every stage before
the first one runs, so a refused run changes nothing.
"""

import json

from hdfs_io import check_can_publish, get_filesystem, join
from models.manifest import Stopwatch, redact, versions
from models.rfm_stage import run_rfm_stage
from models.segments_stage import run_segments_stage

__all__ = ["run_pipeline", "STAGES", "DEFAULT_OUTPUT_ROOT"]

DEFAULT_OUTPUT_ROOT = "crm-output"
STAGES = ("data", "rfm", "rfm_segments", "baskets", "recommendations", "segments", "sales")
PUBLISHED = STAGES[1:]
DATA_FILE = "transactions.csv"


def run_pipeline(
    output_root=DEFAULT_OUTPUT_ROOT,
    *,
    inputs=None,
    schema=None,
    runner="inline",
    as_of=None,
    period="D",
    overwrite=False,
    conf_paths=None,
    generate_options=None,
    basket_options=None,
    kmeans_options=None,
    sales_options=None,
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
    reporter : models.progress.Reporter, optional

    Returns
    -------
    dict
        The run record also written to ``<output_root>/_pipeline.json``.
    """
    fs, root = get_filesystem(output_root)
    paths = {stage: join(root, stage) for stage in STAGES}
    for stage in PUBLISHED:
        check_can_publish(fs, paths[stage], overwrite)
    data_path = join(paths["data"], DATA_FILE)
    if not inputs and fs.exists(data_path) and not overwrite:
        check_can_publish(fs, paths["data"], overwrite)
    watch = Stopwatch()
    record = {
        "tool": "crm-mapreduce",
        "output_root": fs.uri(root),
        "runner": runner,
        "parameters": redact(
            {
                "as_of": as_of,
                "period": period,
                "generate": generate_options or None,
                "baskets": basket_options or None,
                "segments": kmeans_options or None,
                "sales": sales_options or None,
            }
        ),
        "versions": versions(),
        "stages": [],
    }

    if inputs:
        input_paths = list(inputs)
    else:
        input_paths = [fs.uri(data_path)]
        record["stages"].append(
            _generate_data(fs, data_path, generate_options or {}, overwrite, reporter)
        )
        schema = None
    if schema is None:
        from models.inputs import detect_schema

        schema = detect_schema(input_paths)

    rows, rfm_manifest = run_rfm_stage(
        input_paths,
        fs.uri(paths["rfm"]),
        schema=schema,
        runner=runner,
        as_of=as_of,
        period=period,
        overwrite=overwrite,
        conf_paths=conf_paths,
        reporter=reporter,
    )
    record["stages"].append(_stage_entry("rfm", fs.uri(paths["rfm"]), rfm_manifest))
    scored, _summary, seg_manifest = run_segments_stage(
        rows,
        fs.uri(paths["rfm_segments"]),
        source=fs.uri(paths["rfm"]),
        overwrite=overwrite,
        reporter=reporter,
    )
    record["stages"].append(
        _stage_entry("rfm_segments", fs.uri(paths["rfm_segments"]), seg_manifest)
    )
    if schema.has("order_id") and schema.has("item_id"):
        from models.baskets_stage import run_baskets_stage

        manifest = run_baskets_stage(
            input_paths,
            fs.uri(paths["baskets"]),
            schema=schema,
            recommendations_path=fs.uri(paths["recommendations"]),
            runner=runner,
            overwrite=overwrite,
            conf_paths=conf_paths,
            reporter=reporter,
            **(basket_options or {}),
        )
        record["stages"].append(_stage_entry("baskets", fs.uri(paths["baskets"]), manifest))
        rec = manifest["details"]["recommendations"]
        record["stages"].append(
            {
                "stage": "recommendations",
                "output": rec["output"],
                "lines": manifest["lines"],
                "rows_written": rec["rows_written"],
                "seconds": rec["seconds"],
            }
        )
    else:
        for stage in ("baskets", "recommendations"):
            record["stages"].append(
                {
                    "stage": stage,
                    "output": None,
                    "skipped": f"columns={list(schema.columns)!r} have no order_id and "
                    "item_id to make baskets",
                }
            )
    record["stages"].append(
        _kmeans_stage(fs, paths, scored, runner, conf_paths, overwrite, kmeans_options, reporter)
    )
    from models.sales_stage import run_sales_stage

    _series, sales_manifest = run_sales_stage(
        input_paths,
        fs.uri(paths["sales"]),
        schema=schema,
        runner=runner,
        conf_paths=conf_paths,
        overwrite=overwrite,
        reporter=reporter,
        **(sales_options or {}),
    )
    record["stages"].append(_stage_entry("sales", fs.uri(paths["sales"]), sales_manifest))
    record["timings"] = watch.as_dict()
    fs.write(join(root, "_pipeline.json"), json.dumps(record, indent=2), overwrite=True)
    if reporter:
        reporter.progress("run")(
            f"done in {record['timings']['seconds']:.1f} s; results under {fs.uri(root)}"
        )
    return record


def _stage_entry(stage, path, manifest):
    return {
        "stage": stage,
        "output": path,
        "lines": manifest["lines"],
        "rows_written": manifest["rows_written"],
        "seconds": manifest["timings"]["seconds"],
    }


def _kmeans_stage(fs, paths, scored, runner, conf_paths, overwrite, options, reporter):
    """The K-Means segments stage; recorded as skipped when there are fewer distinct
    customers than any ``k`` asked for (a pipeline on a tiny input still completes)."""
    from models.kmeans import TooFewPointsError
    from models.kmeans_stage import run_kmeans_stage

    try:
        manifest = run_kmeans_stage(
            [fs.uri(paths["rfm_segments"])],
            fs.uri(paths["segments"]),
            rows=scored,
            runner=runner,
            conf_paths=conf_paths,
            overwrite=overwrite,
            reporter=reporter,
            **(options or {}),
        )
    except TooFewPointsError as e:
        if reporter:
            reporter.progress("segments")(f"skipped: {e}")
        return {"stage": "segments", "output": None, "skipped": str(e)}
    return _stage_entry("segments", fs.uri(paths["segments"]), manifest)


def _generate_data(fs, data_path, options, overwrite, reporter):
    """Generate the built-in log at ``data_path`` (see :mod:`models.data_stage`)."""
    from models.data_stage import generate_data

    truth = generate_data(fs.uri(data_path), options, overwrite=overwrite, reporter=reporter)
    return {
        "stage": "data",
        "output": fs.uri(data_path),
        "lines": None,
        "rows_written": truth["lines_total"],
        "seconds": truth["seconds"],
        "truth": {k: truth[k] for k in ("seed", "n_customers", "lines_total", "rejects_by_reason")},
    }
