"""The RFM stage: run :class:`mr_jobs.rfm.MRCustomerRFM` and publish the rows its tasks write.

Published layout (``<output>/``): ``part-*`` files with one JSON object per customer,
written by the job's tasks (the reducers, or the map-only :mod:`mr_jobs.rfm_finish` when
the as-of date is the default), each sorted by the customer id's JSON key as the shuffle
sorts it (across parts no order is promised; how many parts depends on the runner),
``_manifest.json`` and ``_SUCCESS``. The columns are described in :mod:`mr_jobs.rfm` and
the README. The driver reads only the counters: lines, rows written, purchase days.
"""

from hdfs_io import Publication, get_filesystem
from models.inputs import describe_inputs, local_inputs
from models.job_runner import AccountingError, run_job, run_job_into
from models.manifest import Stopwatch, build_manifest
from models.progress import summarize_manifest
from mr_jobs.job_options import schema_to_args
from mr_jobs.records import parse_as_of
from mr_jobs.rfm import MRCustomerRFM, purchase_days
from mr_jobs.rfm_finish import MRFinishRFMRows

__all__ = ["run_rfm_stage"]


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
    """Compute per-customer RFM with MapReduce and publish it; the rows are written by the
    jobs' tasks, never read by the driver.

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
        ``YYYY-MM-DD``; default the latest purchase date in the input, which the RFM job
        counts (:func:`mr_jobs.rfm.purchase_days`); the map-only
        :class:`mr_jobs.rfm_finish.MRFinishRFMRows` then fills the as-of fields.
    period : {"D", "W"}
        Period of the lifetimes-compatible columns.
    overwrite : bool
    conf_paths : list of str or None
        mrjob config files (see :func:`models.job_runner.run_job`).
    reporter : models.progress.Reporter, optional

    Returns
    -------
    dict
        The manifest. ``details`` holds ``as_of`` (the date used), ``customers``, and
        ``first_purchase_date`` / ``last_purchase_date`` of the accepted lines (null when
        none was accepted).
    """
    say = reporter.progress("rfm") if reporter else (lambda message: None)
    if as_of is not None:
        parse_as_of(as_of)  # fail before running anything
    fs, out = get_filesystem(output_path)
    watch = Stopwatch()
    inputs = describe_inputs(input_paths)
    args = schema_to_args(schema) + ["--period", period]
    with Publication(fs, out, overwrite=overwrite) as publication:
        total = sum(i["bytes"] for i in inputs)
        say(f"{len(inputs)} input(s), {total:,} bytes -> {fs.uri(out)}")
        jobs = {"runner": runner, "conf_paths": conf_paths, "progress": say}
        with local_inputs(input_paths, runner, progress=say) as readable_inputs:
            if as_of is not None:
                with run_job_into(
                    publication, MRCustomerRFM, readable_inputs, args + ["--as-of", as_of], **jobs
                ) as run:
                    lines, days, written = run.lines, purchase_days(run.counters), run.output_rows
                    job_seconds = run.seconds
                effective_as_of = as_of
            else:
                lines, days, written, job_seconds = _rows_as_of_latest(
                    publication, readable_inputs, args, jobs
                )
                effective_as_of = days[1].isoformat() if days else None
        if written == 0:
            publication.write_part(0, [])  # the layout of an empty result: one empty part
        say(f"jobs finished in {job_seconds:.1f} s; published {written:,} customers")
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
                "customers": written,
                "first_purchase_date": days[0].isoformat() if days else None,
                "last_purchase_date": days[1].isoformat() if days else None,
            },
        )
        publication.commit(manifest)
    summarize_manifest(reporter, "rfm", manifest)
    return manifest


def _rows_as_of_latest(publication, inputs, args, jobs):
    """Run the RFM job without an as-of date, then fill the rows as of the latest purchase
    date it counted, straight into ``publication``.

    Returns ``(lines, purchase days or None, rows written, seconds of both jobs)``.
    """
    with run_job(MRCustomerRFM, inputs, args, **jobs) as run:
        lines, days, seconds = run.lines, purchase_days(run.counters), run.seconds
        if days is None or run.output_rows == 0:
            return lines, days, 0, seconds
        finish_args = ["--as-of", days[1].isoformat()]
        with run_job_into(
            publication, MRFinishRFMRows, run.output_parts(), finish_args, **jobs
        ) as f:
            if f.output_rows != run.output_rows:
                raise AccountingError(
                    f"the RFM job wrote {run.output_rows} rows but {f.output_rows} were "
                    "finished; a task's output was lost"
                )
            return lines, days, f.output_rows, seconds + f.seconds
