"""The RFM segments stage: score the RFM rows, name segments, publish them, by MapReduce.

Published layout (``<output>/``): ``part-*`` JSON lines written by the tasks of the
map-only :class:`mr_jobs.rfm_segments.MRScoreRFMRows` (the RFM row plus ``r_score``,
``f_score``, ``m_score``, ``rfm_cell``, ``rfm_sum``, ``value_tier``, ``single_purchase``,
``segment``; each part in the order of the RFM part it scores), ``customers.csv`` (the
same columns, for BI tools, streamed from the parts), ``segment_summary.csv`` and
``segment_summary.json`` (one row per named segment, from the job's counters),
``thresholds.json`` (the order statistics the scores come from), ``sample.csv`` (for
the report's distributions and R x F heatmap: ``recency_days``, ``orders``,
``total_value``, ``r_score``, ``f_score``, ``m_score`` of a uniform seeded sample of at
most :data:`SAMPLE_SIZE` customers, :func:`models.churn.keyed_sample` over the RFM rows,
scored with the same thresholds; every customer when there are no more; no customer id),
``_manifest.json``, ``_SUCCESS``. Rules: :mod:`models.rfm_scores`.

The driver holds no customer row but that bounded sample: the exact quintile thresholds
come from radix-selection passes (:func:`models.rfm_thresholds.exact_thresholds`), the
scores from one map-only pass that ships them, the summary from counters.
"""

import json
import os
import tempfile

from hdfs_io import Publication, get_filesystem
from models.inputs import describe_inputs, expand_parts, local_inputs
from models.job_runner import run_job_into
from models.manifest import Stopwatch, build_manifest
from models.outputs import csv_from_parts, csv_string, read_part_rows
from models.rfm_scores import summary_from_totals
from models.rfm_thresholds import exact_thresholds
from mr_jobs.rfm import RFM_COLUMNS
from mr_jobs.rfm_segments import SCORE_COLUMNS, MRScoreRFMRows, segment_totals
from mr_jobs.segment_rules import score

__all__ = ["run_segments_stage", "SAMPLE_FILE", "SAMPLE_SIZE", "THRESHOLDS_FILE"]

THRESHOLDS_FILE = "thresholds.json"
SAMPLE_FILE = "sample.csv"
#: The most customers in :data:`SAMPLE_FILE`.
SAMPLE_SIZE = 5_000
_SAMPLE_COLUMNS = ("recency_days", "orders", "total_value", "r_score", "f_score", "m_score")


def run_segments_stage(
    input_paths,
    output_path,
    *,
    runner="inline",
    conf_paths=None,
    overwrite=False,
    reporter=None,
):
    """Score the RFM stage's rows and publish the segments.

    Parameters
    ----------
    input_paths : str or list of str
        The RFM stage's output directory (or its part files), local or ``hdfs://``.
    output_path : str
    runner, conf_paths, overwrite, reporter
        As for :func:`models.rfm_stage.run_rfm_stage`.

    Returns
    -------
    (pandas.DataFrame, dict)
        The segment summary and the manifest.

    Raises
    ------
    ValueError
        When a row cannot be scored (a missing or non-numeric value, negative
        ``recency_days``, ``orders`` below 1), naming the column and the count.
    """
    if isinstance(input_paths, str):
        input_paths = [input_paths]
    say = reporter.progress("rfm_segments") if reporter else (lambda message: None)
    fs, out = get_filesystem(output_path)
    watch = Stopwatch()
    inputs = describe_inputs(input_paths)
    jobs = {"runner": runner, "conf_paths": conf_paths}
    with (
        Publication(fs, out, overwrite=overwrite) as publication,
        local_inputs(expand_parts(input_paths), runner, progress=say) as readable,
        tempfile.TemporaryDirectory(prefix="crm-rfm-segments-") as tmp,
    ):
        say(f"exact quintile thresholds of {len(readable)} part(s)")
        thresholds = exact_thresholds(readable, **jobs)
        path = os.path.join(tmp, THRESHOLDS_FILE)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(thresholds, f, indent=2)
        say(f"scoring {thresholds['orders']['n']:,} customers")
        args = ["--thresholds", path]
        with run_job_into(publication, MRScoreRFMRows, readable, args, **jobs) as run:
            written, (totals, invalid) = run.output_rows, segment_totals(run.counters)
        _check_scored(invalid)
        summary = summary_from_totals(totals)
        csv_from_parts(publication, "customers.csv", [*RFM_COLUMNS, *SCORE_COLUMNS])
        publication.write_file("segment_summary.csv", summary.to_csv(index=False))
        publication.write_file(
            "segment_summary.json",
            json.dumps(json.loads(summary.to_json(orient="records")), indent=2),
        )
        with open(path, encoding="utf-8") as f:
            publication.write_file(THRESHOLDS_FILE, f.read())
        sample = _report_sample(readable, thresholds, written, jobs)
        publication.write_file(SAMPLE_FILE, csv_string(_SAMPLE_COLUMNS, sample))
        if written == 0:
            publication.write_part(0, [])
        manifest = build_manifest(
            "rfm_segments",
            inputs=inputs,
            parameters={"overwrite": overwrite},
            runner=runner,
            lines=None,
            rows_written=written,
            stopwatch=watch,
            outputs=[
                "customers.csv",
                "segment_summary.csv",
                "segment_summary.json",
                THRESHOLDS_FILE,
                SAMPLE_FILE,
            ],
            details={
                "customers_by_segment": dict(
                    zip(summary["segment"], summary["customers"].astype(int).tolist(), strict=True)
                ),
                "threshold_passes": max(d["passes"] for d in thresholds.values()),
            },
        )
        publication.commit(manifest)
    if reporter:
        reporter.summary("rfm_segments", rows_in=written, rows_out=written, seconds=watch.seconds)
    return summary, manifest


def _check_scored(invalid):
    """ValueError naming the first column with rows that cannot be scored."""
    for column in ("recency_days", "orders", "total_value"):
        count = invalid.get(column, 0)
        if count:
            raise ValueError(
                f"{column} is missing, not a number or out of range in {count} "
                f"row{'s' if count != 1 else ''}; scores need a valid value for every customer"
            )


def _report_sample(readable, thresholds, population, jobs):
    """At most :data:`SAMPLE_SIZE` scored rows of a uniform seeded sample of the RFM rows
    (:func:`models.churn.keyed_sample`; seed 0), without their ids."""
    from models.churn import keyed_sample

    frame, _ = keyed_sample(
        readable,
        lambda: read_part_rows(readable),
        population=population,
        max_rows=SAMPLE_SIZE,
        seed=0,
        columns=("customer_id", "recency_days", "orders", "total_value"),
        noun="customers",
        **jobs,
    )
    limits = {c: thresholds[c]["thresholds"] for c in ("recency_days", "orders", "total_value")}
    rows = []
    for recency, orders, value in frame[["recency_days", "orders", "total_value"]].itertuples(
        index=False
    ):
        rows.append(
            {
                "recency_days": int(recency),
                "orders": int(orders),
                "total_value": float(value),
                "r_score": score(recency, limits["recency_days"], False),
                "f_score": score(orders, limits["orders"], True),
                "m_score": score(value, limits["total_value"], True),
            }
        )
    return rows
