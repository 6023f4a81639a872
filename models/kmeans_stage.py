"""The segments stage: K-Means over the RFM rows, profiles and names, published.

Input: the RFM stage's rows (its output directory, or the RFM segments stage's, whose rows
add the named RFM ``segment``; files or directories, local or ``hdfs://``; in a directory
only the ``part-*`` files are read). The algorithm is :mod:`models.kmeans`.

Published layout (``<output>/``):

``part-*``
    One JSON object per customer, written by the tasks of
    :class:`mr_jobs.kmeans_rows.MRKMeansSegmentRows`: ``customer_id``, ``segment`` (id,
    0 = most valuable), ``segment_name``, ``distance`` (to the segment's centre, in
    standard deviations), ``recency_days``, ``orders``, ``total_value`` and, when the
    input has it, ``rfm_segment``. Each part sorted by ``customer_id`` (across parts no
    order is promised; how many parts depends on the runner).
``customers.csv``
    The same, as CSV, streamed from the parts.
``segments.csv``, ``segments.json``
    One row per segment (:func:`models.segment_profiles.profile_from_totals`), from the
    exact totals of :class:`mr_jobs.segment_profile.MRSegmentProfile`.
``overlap.csv``
    Only when the input has the RFM segments: customers of each (segment, RFM segment)
    pair and their shares (:func:`models.segment_profiles.overlap_from_counts`), from the
    same job.
``k_selection.csv``
    One row per ``k`` tried: inertia, silhouette on the sample, iterations.
``sample.csv``
    For the report's scatter: the first :data:`models.summaries.REPORT_SAMPLE_SIZE`
    customers of the fit's uniform sample (the smallest keyed hashes, so a uniform sample
    too), one row each: the features in their raw units (``recency`` in days,
    ``frequency`` in orders, ``monetary`` in currency, ...), ``segment`` and
    ``segment_name`` by the chosen model. No customer id.
``model.json``
    What it takes to score a new customer: the features (formula, transform), the
    standardisation (``mean``, ``scale``), the centres (standardised and in raw units),
    the names, the seed and the options.
``_manifest.json``
    Line accounting of the features pass, parameters, and per ``k`` the iterations with
    the inertia and the centre shift of each.

No customer row passes through the driver: it reads counters, the centres, the bounded
sample of the fit and the per-segment totals; ``rows_written`` is the labelling job's
count of the rows its tasks wrote.
"""

import json
import os
import tempfile
import warnings
from types import SimpleNamespace

import pandas as pd

from hdfs_io import Publication, get_filesystem
from models.checks import check_int
from models.inputs import describe_inputs, expand_parts, local_inputs
from models.job_runner import run_job, run_job_into
from models.kmeans import (
    SAMPLE_SIZE,
    EmptyClusterWarning,
    TooFewPointsError,
    fit_k_range,
    parse_k,
    prepared_features,
)
from models.manifest import Stopwatch, build_manifest
from models.outputs import csv_from_parts, csv_string
from models.progress import summarize_manifest
from models.segment_profiles import (
    name_segments,
    overlap_from_counts,
    profile_from_totals,
    segment_order,
)
from models.summaries import REPORT_SAMPLE_SIZE
from mr_jobs.features import DEFAULT_FEATURES, parse_features
from mr_jobs.kmeans_rows import MRKMeansSegmentRows, duplicates, row_columns, write_model
from mr_jobs.points import assign
from mr_jobs.segment_profile import MRSegmentProfile

__all__ = ["run_kmeans_stage", "check_options", "DEFAULTS"]

DEFAULTS = {
    "k": "4-8",
    "features": ",".join(DEFAULT_FEATURES),
    "seed": 0,
    "n_init": 10,
    "tol": 1e-4,
    "max_iter": 300,
    "sample_size": SAMPLE_SIZE,
}


def check_options(
    *,
    k=DEFAULTS["k"],
    features=DEFAULTS["features"],
    seed=DEFAULTS["seed"],
    n_init=DEFAULTS["n_init"],
    tol=DEFAULTS["tol"],
    max_iter=DEFAULTS["max_iter"],
    sample_size=DEFAULTS["sample_size"],
):
    """Validate the options of :func:`run_kmeans_stage` before any work.

    Returns
    -------
    (list of int, list)
        The values of ``k`` and the chosen features.

    Raises
    ------
    ValueError
        Naming the bad value.
    """
    ks = parse_k(k)
    chosen = parse_features(features)
    check_int("n_init", n_init, 1)
    check_int("max_iter", max_iter, 1)
    if not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"tol={tol!r} should be a number >= 0")
    if not isinstance(sample_size, int) or sample_size < max(ks):
        raise ValueError(f"sample_size={sample_size!r} should be an int >= the largest k")
    return ks, chosen


def run_kmeans_stage(
    input_paths,
    output_path,
    *,
    k=DEFAULTS["k"],
    features=DEFAULTS["features"],
    seed=DEFAULTS["seed"],
    n_init=DEFAULTS["n_init"],
    tol=DEFAULTS["tol"],
    max_iter=DEFAULTS["max_iter"],
    sample_size=DEFAULTS["sample_size"],
    runner="inline",
    conf_paths=None,
    overwrite=False,
    reporter=None,
):
    """Segment customers with distributed K-Means and publish the segments.

    Parameters
    ----------
    input_paths : list of str
        RFM rows (see the module docstring).
    output_path : str
    k : int or str
        A ``k``, a range ``"4-8"`` or a list ``"4,6,8"``; with several, the best
        silhouette on the sample picks one.
    features : str
        Comma-separated names from :mod:`mr_jobs.features`.
    seed, n_init, tol, max_iter, sample_size
        See :func:`models.kmeans.fit_kmeans` and :func:`models.kmeans.prepared_features`.
    runner, conf_paths, overwrite, reporter
        As for the other stages.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    ValueError
        A bad parameter (before any job runs), no usable row, or a customer id in more
        than one input row (naming it).
    """
    say = reporter.progress("segments") if reporter else (lambda message: None)
    ks, chosen = check_options(
        k=k, features=features, n_init=n_init, tol=tol, max_iter=max_iter, sample_size=sample_size
    )
    options = {"seed": seed, "n_init": n_init, "tol": tol, "max_iter": max_iter}
    jobs = {"runner": runner, "conf_paths": conf_paths}
    fs, out = get_filesystem(output_path)
    watch = Stopwatch()
    inputs = describe_inputs(input_paths)
    files = expand_parts(input_paths)
    with Publication(fs, out, overwrite=overwrite) as publication:
        say(f"{len(files)} input file(s) -> {fs.uri(out)}; k in {ks}")
        with local_inputs(files, runner, progress=say) as readable:
            fit = _fit(readable, ks, chosen, sample_size, options, jobs, say)
            labelling = _publish_rows(publication, readable, fit, jobs, say)
        outputs, profile_seconds = _publish_tables(publication, fit, labelling, jobs, say)
        publication.write_file("model.json", json.dumps(_model(fit, chosen, seed), indent=2))
        manifest = build_manifest(
            "segments",
            inputs=inputs,
            parameters={
                "k": str(k),
                "features": fit.feature_names,
                **options,
                "sample_size": sample_size,
                "overwrite": overwrite,
            },
            runner=runner,
            lines=fit.lines,
            rows_written=labelling.written,
            stopwatch=watch,
            outputs=[*outputs, "model.json"],
            details=_details(fit, labelling.seconds, profile_seconds),
        )
        publication.commit(manifest)
    summarize_manifest(reporter, "segments", manifest)
    return manifest


def _fit(readable, ks, chosen, sample_size, options, jobs, say):
    """Prepare the features, fit every feasible ``k``, order and name the best model's
    segments; what the rest of the stage needs, as a namespace."""
    feature_names = [f.name for f in chosen]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EmptyClusterWarning)
        with prepared_features(
            readable,
            features=feature_names,
            seed=options["seed"],
            sample_size=sample_size,
            distinct_limit=max(ks),
            progress=say,
            **jobs,
        ) as data:
            fitted_ks, dropped_ks = _feasible(ks, data)
            if dropped_ks:
                say(f"k in {dropped_ks} left out: only {data.distinct} distinct customers")
            selection = fit_k_range(data, fitted_ks, progress=say, **options)
            best = selection.best
            order = segment_order(best.centroids, feature_names)
            best.centroids = best.centroids[order]
            best.counts = [best.counts[j] for j in order]
            fit = SimpleNamespace(
                feature_names=feature_names,
                selection=selection,
                best=best,
                dropped_ks=dropped_ks,
                names=name_segments(best.centroids, feature_names),
                lines=data.lines,
                count=data.count,
                mean=data.mean,
                scale=data.scale,
                centres_raw=data.original_units(best.centroids),
                sample_rows=_sample_rows(data, best.centroids, feature_names),
                stats={
                    "count": data.count,
                    "mean": data.mean.tolist(),
                    "scale": data.scale.tolist(),
                    "min": data.minimum,
                    "max": data.maximum,
                    "sample_size": int(data.sample.shape[0]),
                    "seconds": data.seconds,
                },
            )
    for warning in caught:
        if not issubclass(warning.category, EmptyClusterWarning):
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
        else:
            say(f"warning: {warning.message}")
    return fit


def _publish_rows(publication, readable, fit, jobs, say):
    """Run the labelling job, whose tasks write the publication's parts; check that it
    wrote one row per customer with features, and no customer twice."""
    best = fit.best
    with tempfile.TemporaryDirectory(prefix="crm-kmeans-model-") as tmp:
        path = os.path.join(tmp, "model.json")
        write_model(path, fit.feature_names, fit.mean, fit.scale, best.centroids, fit.names)
        args = ["--model", path]
        with run_job_into(publication, MRKMeansSegmentRows, readable, args, **jobs) as run:
            written, seconds = run.output_rows, run.seconds
            with_rfm_segment = run.output_count("with_rfm_segment") > 0
            duplicated, first = duplicates(run.counters)
    if duplicated:
        raise ValueError(
            f"customer_id={first!r} appears in more than one input row "
            f"({duplicated:,} customer id(s) do)"
        )
    if written != fit.count:
        raise RuntimeError(
            f"the labelling job wrote {written:,} rows for {fit.count:,} customers with "
            "features: it and the features job disagree on which rows are usable"
        )
    say(f"labelled {written:,} customers with k={best.k} ({seconds:.1f} s)")
    return SimpleNamespace(written=written, seconds=seconds, with_rfm_segment=with_rfm_segment)


def _segment_totals(publication, jobs, say):
    """Per-segment totals and overlap counts of the published rows
    (:class:`mr_jobs.segment_profile.MRSegmentProfile`)."""
    parts = expand_parts([publication.fs.uri(publication.staging_path)])
    totals, overlap = {}, []
    with (
        local_inputs(parts, jobs["runner"], progress=say) as readable,
        run_job(MRSegmentProfile, readable, **jobs) as run,
    ):
        for record in run.rows():
            if "rfm_segment" in record:
                overlap.append(record)
            else:
                totals[record["segment"]] = record
        seconds = run.seconds
    say(f"profiled {len(totals)} segment(s) ({seconds:.1f} s)")
    return totals, overlap, seconds


def _publish_tables(publication, fit, labelling, jobs, say):
    """``customers.csv``, the profiles, the overlap and ``k_selection.csv``; returns the
    names written and the seconds of the totals job."""
    totals, overlap, seconds = _segment_totals(publication, jobs, say)
    csv_from_parts(publication, "customers.csv", row_columns(labelling.with_rfm_segment))
    profile = profile_from_totals(totals, fit.centres_raw, fit.feature_names, fit.names)
    publication.write_file("segments.csv", profile.to_csv(index=False))
    publication.write_file(
        "segments.json", json.dumps(json.loads(profile.to_json(orient="records")), indent=2)
    )
    outputs = ["customers.csv", "segments.csv", "segments.json", "k_selection.csv"]
    if labelling.with_rfm_segment:
        table = overlap_from_counts(overlap, fit.names)
        publication.write_file("overlap.csv", table.to_csv(index=False))
        outputs.append("overlap.csv")
    table = pd.DataFrame(fit.selection.table)
    publication.write_file("k_selection.csv", table.to_csv(index=False))
    columns = [*fit.feature_names, "segment", "segment_name"]
    for row in fit.sample_rows:
        row["segment_name"] = fit.names[row["segment"]]
    publication.write_file("sample.csv", csv_string(columns, fit.sample_rows))
    outputs.append("sample.csv")
    return outputs, seconds


def _sample_rows(data, centroids, feature_names):
    """The first :data:`REPORT_SAMPLE_SIZE` points of the fit's sample in raw units, with
    their segment by ``centroids`` (already in segment order)."""
    sample = data.sample[:REPORT_SAMPLE_SIZE]
    if not len(sample):
        return []
    labels, _ = assign(data.standardise(sample), centroids)
    raw = data.original_units(data.standardise(sample))
    return [
        {**dict(zip(feature_names, map(float, point), strict=True)), "segment": int(label)}
        for point, label in zip(raw, labels, strict=True)
    ]


def _model(fit, chosen, seed):
    """``model.json``: what it takes to score a new customer."""
    best = fit.best
    return {
        "k": best.k,
        "features": [
            {"name": f.name, "formula": f.formula, "transform": f.transform, "unit": f.unit}
            for f in chosen
        ],
        "mean": fit.stats["mean"],
        "scale": fit.stats["scale"],
        "centroids": best.centroids.tolist(),
        "centroids_original_units": fit.centres_raw.tolist(),
        "names": fit.names,
        "inertia": best.inertia,
        "seed": seed,
    }


def _details(fit, label_seconds, profile_seconds):
    """The manifest's ``details``: the choice of ``k``, every fit, the segments."""
    selection, best = fit.selection, fit.best
    return {
        "chosen_k": best.k,
        "selection": "single k"
        if len(selection.table) == 1
        else "highest silhouette on the sample",
        "k_left_out": fit.dropped_ks,
        "k_selection": selection.table,
        "standardisation": fit.stats,
        "fits": {
            str(kk): {
                "inertia": r.inertia,
                "iterations": r.n_iter,
                "converged": r.converged,
                "tolerance": r.tol,
                "history": r.history,
                "init": r.init,
                "counts": r.counts if kk != best.k else best.counts,
            }
            for kk, r in selection.results.items()
        },
        "segments": dict(zip(fit.names, best.counts, strict=True)),
        "label_seconds": round(label_seconds, 3),
        "profile_seconds": round(profile_seconds, 3),
    }


def _feasible(ks, data):
    """With a range of ``k``, leave out those above the number of distinct customers (a
    single ``k`` is fitted as asked, and refused by the driver if it cannot be)."""
    if len(ks) == 1:
        return ks, []
    kept = [k for k in ks if k <= min(data.distinct, data.count)]
    if not kept:
        raise TooFewPointsError(
            f"k={ks[0]}..{ks[-1]}: every k is larger than the number of distinct "
            f"customers ({data.distinct})"
        )
    return kept, [k for k in ks if k not in kept]
