"""The RFM stage: run :class:`mr_jobs.rfm.MRCustomerRFM`, finish the rows, publish them.

Published layout (``<output>/``): ``part-*`` files with one JSON object per customer,
sorted by ``customer_id`` (so every runner publishes byte-identical parts), ``_manifest.json``
and ``_SUCCESS``. The columns are described in :mod:`mr_jobs.rfm` and the README.
"""

import json

from hdfs_io import Publication, get_filesystem
from models.inputs import describe_inputs, local_inputs
from models.job_runner import run_job
from models.manifest import Stopwatch, build_manifest
from mr_jobs.job_options import schema_to_args
from mr_jobs.records import parse_as_of
from mr_jobs.rfm import MRCustomerRFM, apply_as_of

__all__ = ["run_rfm_stage", "write_json_parts", "ROWS_PER_PART"]

ROWS_PER_PART = 1_000_000


def write_json_parts(publication, rows):
    """Write ``rows`` (dicts) as JSON lines into ``part-00000``, ``part-00001``, ...

    Returns the number of rows written.
    """
    written = 0
    for index, start in enumerate(range(0, max(len(rows), 1), ROWS_PER_PART)):
        chunk = rows[start : start + ROWS_PER_PART]
        publication.write_part(index, (json.dumps(r, ensure_ascii=False) for r in chunk))
        written += len(chunk)
    return written


def run_rfm_stage(
    input_paths,
    output_path,
    *,
    schema,
    runner="inline",
    as_of=None,
    period="D",
    overwrite=False,
    conf_paths=None,
    reporter=None,
):
    """Compute per-customer RFM with MapReduce and publish it.

    Parameters
    ----------
    input_paths : list of str
        Order-line files or directories, local or ``hdfs://``.
    output_path : str
        Where to publish (a directory; refused if it exists and not ``overwrite``).
    schema : mr_jobs.records.InputSchema
        How to read the input.
    runner : str
        mrjob runner.
    as_of : str, optional
        ``YYYY-MM-DD``; default the latest purchase date in the input.
    period : {"D", "W"}
        Period of the lifetimes-compatible columns.
    overwrite : bool
    conf_paths : list of str or None
        mrjob config files (see :func:`models.job_runner.run_job`).
    reporter : models.progress.Reporter, optional

    Returns
    -------
    (list of dict, dict)
        The published rows and the manifest.
    """
    say = reporter.progress("rfm") if reporter else (lambda message: None)
    if as_of is not None:
        parse_as_of(as_of)  # fail before running anything
    fs, out = get_filesystem(output_path)
    watch = Stopwatch()
    inputs = describe_inputs(input_paths)
    args = schema_to_args(schema) + ["--period", period]
    if as_of is not None:
        args += ["--as-of", as_of]
    with Publication(fs, out, overwrite=overwrite) as publication:
        total = sum(i["bytes"] for i in inputs)
        say(f"{len(inputs)} input(s), {total:,} bytes -> {fs.uri(out)}")
        with (
            local_inputs(input_paths, runner, progress=say) as readable_inputs,
            run_job(
                MRCustomerRFM,
                readable_inputs,
                args,
                runner=runner,
                conf_paths=conf_paths,
                progress=say,
            ) as run,
        ):
            rows = list(run.rows())
            lines, job_seconds = run.lines, run.seconds
        effective_as_of = as_of
        if as_of is None and rows:
            # the latest purchase date, from the reduced rows: no second pass over lines
            effective_as_of = max(r["last_purchase"][:10] for r in rows)
            as_of_ordinal = parse_as_of(effective_as_of)
            for row in rows:
                apply_as_of(row, as_of_ordinal)
        rows.sort(key=lambda r: r["customer_id"])
        say(f"job finished in {job_seconds:.1f} s; publishing {len(rows):,} customers")
        written = write_json_parts(publication, rows)
        manifest = build_manifest(
            "rfm",
            inputs=inputs,
            parameters={
                "schema": schema.to_dict(),
                "as_of": as_of,
                "period": period,
                "overwrite": overwrite,
            },
            runner=runner,
            lines=lines,
            rows_written=written,
            stopwatch=watch,
            details={
                "as_of": effective_as_of,
                "as_of_source": "given" if as_of else "latest purchase date in the input",
                "job_seconds": round(job_seconds, 3),
                "customers": len(rows),
            },
        )
        publication.commit(manifest)
    if reporter:
        reporter.summary(
            "rfm",
            rows_in=lines["read"],
            rows_out=written,
            rejected=lines["rejected"],
            seconds=manifest["timings"]["seconds"],
            by_reason=lines["rejected_by_reason"],
        )
    return rows, manifest
