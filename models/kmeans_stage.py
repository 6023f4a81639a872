"""The segments stage: K-Means over the RFM rows, profiles and names, published.

Input: the RFM stage's rows (its output directory, or the RFM segments stage's, whose rows
add the named RFM ``segment``; files or directories, local or ``hdfs://``; in a directory
only the ``part-*`` files are read). The algorithm is :mod:`models.kmeans`.

Published layout (``<output>/``):

``part-*``
    One JSON object per customer: ``customer_id``, ``segment`` (id, 0 = most valuable),
    ``segment_name``, ``distance`` (to the segment's centre, in standard deviations),
    ``recency_days``, ``orders``, ``total_value`` and, when the input has it,
    ``rfm_segment``. Sorted by ``customer_id``.
``customers.csv``
    The same, as CSV.
``segments.csv``, ``segments.json``
    One row per segment (:func:`models.segment_profiles.profile_segments`).
``overlap.csv``
    Only when the input has the RFM segments: customers of each (segment, RFM segment)
    pair and their shares (:func:`models.segment_profiles.overlap_table`).
``k_selection.csv``
    One row per ``k`` tried: inertia, silhouette on the sample, iterations.
``model.json``
    What it takes to score a new customer: the features (formula, transform), the
    standardisation (``mean``, ``scale``), the centres (standardised and in raw units),
    the names, the seed and the options.
``_manifest.json``
    Line accounting of the features pass, parameters, and per ``k`` the iterations with
    the inertia and the centre shift of each.
"""

import json
import warnings

import pandas as pd

from hdfs_io import Publication, get_filesystem
from models.inputs import describe_inputs, expand_parts, local_inputs
from models.kmeans import (
    SAMPLE_SIZE,
    EmptyClusterWarning,
    TooFewPointsError,
    fit_k_range,
    label_customers,
    parse_k,
    prepared_features,
)
from models.manifest import Stopwatch, build_manifest
from models.rfm_stage import write_json_parts
from models.segment_profiles import (
    name_segments,
    overlap_table,
    profile_segments,
    segment_order,
)
from mr_jobs.features import DEFAULT_FEATURES, parse_features
from mr_jobs.protocols import loads

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

_PROFILE_COLUMNS = ("recency_days", "orders", "total_value")


def _read_rows(paths):
    """The RFM rows of ``paths`` that parse as JSON objects (others were counted by the
    features job)."""
    rows = []
    for path in paths:
        fs, p = get_filesystem(path)
        with fs.open_read(p) as f:
            for raw in f:
                try:
                    row = loads(raw.decode("utf-8").strip())
                except (UnicodeDecodeError, ValueError):
                    continue
                if isinstance(row, dict):
                    rows.append(row)
    return rows


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
    for name, value, low in (("n_init", n_init, 1), ("max_iter", max_iter, 1)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r} should be an int >= {low}")
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
    rows=None,
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
    rows : list of dict or pandas.DataFrame, optional
        The same rows already in memory (the pipeline passes them), used for the
        profiles instead of reading the input again.
    runner, conf_paths, overwrite, reporter
        As for the other stages.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    ValueError
        A bad parameter (before any job runs), or no usable row.
    """
    say = reporter.progress("segments") if reporter else (lambda message: None)
    ks, chosen = check_options(
        k=k, features=features, n_init=n_init, tol=tol, max_iter=max_iter, sample_size=sample_size
    )
    feature_names = [f.name for f in chosen]
    fs, out = get_filesystem(output_path)
    watch = Stopwatch()
    inputs = describe_inputs(input_paths)
    files = expand_parts(input_paths)
    with Publication(fs, out, overwrite=overwrite) as publication:
        say(f"{len(files)} input file(s) -> {fs.uri(out)}; k in {ks}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EmptyClusterWarning)
            with (
                local_inputs(files, runner, progress=say) as readable,
                prepared_features(
                    readable,
                    features=feature_names,
                    runner=runner,
                    conf_paths=conf_paths,
                    seed=seed,
                    sample_size=sample_size,
                    distinct_limit=max(ks),
                    progress=say,
                ) as data,
            ):
                fitted_ks, dropped_ks = _feasible(ks, data)
                if dropped_ks:
                    say(f"k in {dropped_ks} left out: only {data.distinct} distinct customers")
                selection = fit_k_range(
                    data,
                    fitted_ks,
                    seed=seed,
                    n_init=n_init,
                    tol=tol,
                    max_iter=max_iter,
                    progress=say,
                )
                best = selection.best
                order = segment_order(best.centroids, feature_names)
                best.centroids = best.centroids[order]
                best.counts = [best.counts[j] for j in order]
                labels, label_seconds = label_customers(data, best)
                say(f"labelled {len(labels):,} customers with k={best.k} ({label_seconds:.1f} s)")
                lines = data.lines
                stats = {
                    "count": data.count,
                    "mean": data.mean.tolist(),
                    "scale": data.scale.tolist(),
                    "min": data.minimum,
                    "max": data.maximum,
                    "sample_size": int(data.sample.shape[0]),
                    "seconds": data.seconds,
                }
                centres_raw = data.original_units(best.centroids)
        for warning in caught:
            if not issubclass(warning.category, EmptyClusterWarning):
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
            else:
                say(f"warning: {warning.message}")
        names = name_segments(best.centroids, feature_names)
        labelled = _join(labels, rows if rows is not None else _read_rows(files), names)
        profile = profile_segments(labelled, centres_raw, feature_names, names)
        written = write_json_parts(publication, labelled.to_dict("records"))
        publication.write_file("customers.csv", labelled.to_csv(index=False))
        publication.write_file("segments.csv", profile.to_csv(index=False))
        publication.write_file(
            "segments.json", json.dumps(json.loads(profile.to_json(orient="records")), indent=2)
        )
        outputs = ["customers.csv", "segments.csv", "segments.json", "k_selection.csv"]
        if "rfm_segment" in labelled:
            publication.write_file(
                "overlap.csv", overlap_table(labelled, names).to_csv(index=False)
            )
            outputs.append("overlap.csv")
        publication.write_file("k_selection.csv", pd.DataFrame(selection.table).to_csv(index=False))
        model = {
            "k": best.k,
            "features": [
                {"name": f.name, "formula": f.formula, "transform": f.transform, "unit": f.unit}
                for f in chosen
            ],
            "mean": stats["mean"],
            "scale": stats["scale"],
            "centroids": best.centroids.tolist(),
            "centroids_original_units": centres_raw.tolist(),
            "names": names,
            "inertia": best.inertia,
            "seed": seed,
        }
        publication.write_file("model.json", json.dumps(model, indent=2))
        outputs.append("model.json")
        manifest = build_manifest(
            "segments",
            inputs=inputs,
            parameters={
                "k": str(k),
                "features": feature_names,
                "seed": seed,
                "n_init": n_init,
                "tol": tol,
                "max_iter": max_iter,
                "sample_size": sample_size,
                "overwrite": overwrite,
            },
            runner=runner,
            lines=lines,
            rows_written=written,
            stopwatch=watch,
            outputs=outputs,
            details={
                "chosen_k": best.k,
                "selection": "single k"
                if len(selection.table) == 1
                else "highest silhouette on the sample",
                "k_left_out": dropped_ks,
                "k_selection": selection.table,
                "standardisation": stats,
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
                "segments": dict(zip(names, best.counts, strict=True)),
                "label_seconds": round(label_seconds, 3),
            },
        )
        publication.commit(manifest)
    if reporter:
        reporter.summary(
            "segments",
            rows_in=lines["read"],
            rows_out=written,
            rejected=lines["rejected"],
            seconds=manifest["timings"]["seconds"],
            by_reason=lines["rejected_by_reason"],
        )
    return manifest


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


def _join(labels, rows, names):
    """Labels joined with the profile columns of the RFM rows, sorted by customer id."""
    frame = pd.DataFrame(labels, columns=["customer_id", "segment", "distance"])
    if frame["customer_id"].duplicated().any():
        dup = frame.loc[frame["customer_id"].duplicated(), "customer_id"].iloc[0]
        raise ValueError(f"customer_id={dup!r} appears in more than one input row")
    source = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    wanted = ["customer_id", *_PROFILE_COLUMNS]
    if "segment" in source:
        source = source.rename(columns={"segment": "rfm_segment"})
        wanted.append("rfm_segment")
    source = source[wanted].drop_duplicates("customer_id")
    frame = frame.merge(source, on="customer_id", how="left", validate="one_to_one")
    frame.insert(2, "segment_name", [names[j] for j in frame["segment"]])
    return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)
