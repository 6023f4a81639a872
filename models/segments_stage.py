"""The RFM segments stage: score the RFM rows, name segments, publish them.

Published layout (``<output>/``): ``part-*`` JSON lines (the RFM row plus ``r_score``,
``f_score``, ``m_score``, ``rfm_cell``, ``rfm_sum``, ``value_tier``, ``single_purchase``,
``segment``), ``customers.csv`` (the same columns, for BI tools), ``segment_summary.csv``
and ``segment_summary.json`` (one row per named segment), ``_manifest.json``, ``_SUCCESS``.
Rules: :mod:`models.rfm_scores`.
"""

import json

import pandas as pd

from hdfs_io import Publication, get_filesystem
from models.manifest import Stopwatch, build_manifest
from models.rfm_scores import score_customers, segment_summary
from models.rfm_stage import write_json_parts
from mr_jobs.rfm import RFM_COLUMNS

__all__ = ["run_segments_stage"]


def run_segments_stage(rows, output_path, *, source=None, overwrite=False, reporter=None):
    """Score RFM rows (as published by the RFM stage) and publish the segments.

    Parameters
    ----------
    rows : list of dict
        The RFM stage's rows (``as_of`` filled).
    output_path : str
    source : str, optional
        Where the rows came from, recorded as the manifest's input.
    overwrite : bool
    reporter : models.progress.Reporter, optional

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame, dict)
        The scored customers, the segment summary and the manifest.
    """
    say = reporter.progress("rfm_segments") if reporter else (lambda message: None)
    fs, out = get_filesystem(output_path)
    watch = Stopwatch()
    with Publication(fs, out, overwrite=overwrite) as publication:
        say(f"scoring {len(rows):,} customers")
        scored = score_customers(pd.DataFrame(rows, columns=_columns(rows)))
        summary = segment_summary(scored)
        written = write_json_parts(publication, scored.to_dict("records"))
        publication.write_file("customers.csv", scored.to_csv(index=False))
        publication.write_file("segment_summary.csv", summary.to_csv(index=False))
        publication.write_file(
            "segment_summary.json",
            json.dumps(json.loads(summary.to_json(orient="records")), indent=2),
        )
        manifest = build_manifest(
            "rfm_segments",
            inputs=[{"path": source, "bytes": None}] if source else [],
            parameters={"overwrite": overwrite},
            runner=None,
            lines=None,
            rows_written=written,
            stopwatch=watch,
            outputs=["customers.csv", "segment_summary.csv", "segment_summary.json"],
            details={
                "customers_by_segment": dict(
                    zip(summary["segment"], summary["customers"].astype(int).tolist(), strict=True)
                )
            },
        )
        publication.commit(manifest)
    if reporter:
        reporter.summary("rfm_segments", rows_in=len(rows), rows_out=written, seconds=watch.seconds)
    return scored, summary, manifest


def _columns(rows):
    return list(rows[0]) if rows else list(RFM_COLUMNS)
