"""Distributed K-Means: the driver loop around the MapReduce jobs.

The steps, for RFM rows in ``input_paths``:

1. :func:`prepared_features` runs :class:`mr_jobs.kmeans_features.MRKMeansFeatures`
   (RFM rows -> feature lines, bad rows rejected and counted) and then
   :class:`mr_jobs.feature_stats.MRFeatureStats` over its output: exact sums of every
   feature and of its square (hence the mean and the standard deviation used to
   standardise, ``scale = sqrt(mean(x**2) - mean(x)**2)``, 1 for a constant feature), a
   uniform sample of ``sample_size`` points keyed by the seed, and enough distinct points
   to refuse a ``k`` that the data cannot give.
2. :func:`fit_kmeans` seeds on the sample: ``n_init`` runs of k-means++
   (:func:`sklearn.cluster.kmeans_plusplus`, greedy) each refined by Lloyd's algorithm on
   the sample, the one with the lowest sample inertia kept. This is the refinement of
   Bradley and Fayyad (1998) and what Spark's k-means|| does with its candidates; it
   costs no pass over the data. Then one :class:`mr_jobs.kmeans.MRKMeansIteration` run
   per Lloyd iteration over all points, until the total squared centre shift is at most
   ``tol`` times the mean variance of the standardised features (as scikit-learn does),
   or it is zero, or ``max_iter`` iterations ran. When the last centres moved, one more
   assignment pass measures the inertia and sizes of the centres returned, so that they,
   the labels and the inertia always agree.
3. :func:`label_customers` runs :class:`mr_jobs.kmeans_labels.MRKMeansLabels` and returns
   every customer's label to the driver: for tests and small data. The segments stage
   (:mod:`models.kmeans_stage`) instead has the tasks of
   :class:`mr_jobs.kmeans_rows.MRKMeansSegmentRows` write the labelled rows.

:func:`fit_k_range` fits several ``k`` on the same prepared features and scores each with
the inertia and a silhouette on (a part of) the sample; the best silhouette picks ``k``.

Empty clusters: a cluster that gets no point in an iteration is re-seeded with the point
farthest from its centre (then the next farthest, for a second empty cluster) taken from
a cluster that keeps at least one point, which loses it; a :class:`EmptyClusterWarning` is
issued and the event is recorded in the iteration's history. Nothing is dropped silently.
"""

import math
import os
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from models.job_runner import run_job
from mr_jobs.exact_sums import exact_to_fraction
from mr_jobs.feature_stats import MRFeatureStats
from mr_jobs.features import DEFAULT_FEATURES, parse_features
from mr_jobs.kmeans import MRKMeansIteration, write_centroids
from mr_jobs.kmeans_features import MRKMeansFeatures
from mr_jobs.kmeans_labels import MRKMeansLabels
from mr_jobs.points import assign

__all__ = [
    "EmptyClusterWarning",
    "TooFewPointsError",
    "FeatureData",
    "KMeansResult",
    "KSelection",
    "fit_k_range",
    "fit_kmeans",
    "label_customers",
    "parse_k",
    "prepared_features",
]

SAMPLE_SIZE = 20_000
SILHOUETTE_SAMPLE = 5_000


class EmptyClusterWarning(UserWarning):
    """A cluster received no point in an iteration and was re-seeded."""


class TooFewPointsError(ValueError):
    """``k`` is larger than the number of points, or of distinct points."""


@dataclass
class FeatureData:
    """Prepared feature files and what the statistics pass found (see
    :func:`prepared_features`)."""

    parts: list
    features: tuple
    count: int
    mean: np.ndarray
    scale: np.ndarray
    variance: np.ndarray  # of the transformed features, population
    minimum: list
    maximum: list
    sample: np.ndarray  # transformed, not standardised
    distinct: int  # distinct points found, up to the limit asked for
    distinct_limit: int
    lines: dict
    seconds: dict
    runner: str
    conf_paths: list | None
    work_dir: str

    @property
    def feature_names(self):
        return [f.name for f in self.features]

    def standardise(self, x):
        """``(x - mean) / scale``."""
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.scale

    def original_units(self, z):
        """Standardised points back to the features' raw units (transform inverted)."""
        x = np.asarray(z, dtype=np.float64) * self.scale + self.mean
        return np.array(
            [[f.invert(v) for f, v in zip(self.features, row, strict=True)] for row in x]
        )


@dataclass
class KMeansResult:
    """A fitted model: centres in standardised units, sizes, inertia and the history."""

    k: int
    centroids: np.ndarray
    counts: list
    inertia: float
    n_iter: int
    converged: bool
    tol: float
    history: list = field(default_factory=list)
    init: dict = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class KSelection:
    """Models for several ``k`` and the chosen one (see :func:`fit_k_range`)."""

    results: dict
    table: list
    best_k: int

    @property
    def best(self):
        return self.results[self.best_k]


def parse_k(spec):
    """``k`` values from ``"5"``, ``"3-8"`` or ``"3,5,8"`` (or an int).

    Raises
    ------
    ValueError
        Not such a spec, or a ``k`` below 1.
    """
    if isinstance(spec, int):
        ks = [spec]
    else:
        text = str(spec).strip()
        try:
            if "-" in text:
                low, high = (int(v) for v in text.split("-", 1))
                ks = list(range(low, high + 1))
            else:
                ks = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ValueError(
                f"k={spec!r} should be an int, a range like 3-8 or a list like 3,5,8"
            ) from None
    if not ks or min(ks) < 1:
        raise ValueError(f"k={spec!r} should give at least one k, each >= 1")
    return sorted(set(ks))


def _points_args(runner):
    """mrjob's Spark runner has no ``mapper_raw``: feature jobs read lines there."""
    return ["--line-input"] if runner == "spark" else []


def _say(progress):
    return progress if progress else (lambda message: None)


@contextmanager
def prepared_features(
    input_paths,
    *,
    features=DEFAULT_FEATURES,
    runner="inline",
    conf_paths=None,
    seed=0,
    sample_size=SAMPLE_SIZE,
    distinct_limit=64,
    progress=None,
):
    """Compute the feature files and their statistics; yield a :class:`FeatureData`.

    The feature files live in the runner's output directory (local or on the cluster)
    until the block ends.

    Parameters
    ----------
    input_paths : list of str
        RFM rows (``part-*`` files of the RFM or RFM segments stage), local or URIs.
    features : str or sequence of str
        See :mod:`mr_jobs.features`.
    runner : str
    conf_paths : list of str or None
    seed : int
        Seeds the sample (and, through :func:`fit_kmeans`, the initialisation).
    sample_size : int
        Points in the uniform sample used to seed and to compute silhouettes.
    distinct_limit : int
        Distinct points to look for: the largest ``k`` that will be fitted.
    progress : callable, optional

    Raises
    ------
    ValueError
        Bad parameters, or no row gave features.
    """
    say = _say(progress)
    chosen = parse_features(features)
    if sample_size < 1:
        raise ValueError(f"sample_size={sample_size} should be >= 1")
    work_dir = tempfile.mkdtemp(prefix="crm-kmeans-")
    try:
        with run_job(
            MRKMeansFeatures,
            input_paths,
            ["--features", ",".join(f.name for f in chosen), *_points_args(runner)],
            runner=runner,
            conf_paths=conf_paths,
            progress=say,
        ) as feature_run:
            parts = feature_run.output_parts()
            lines = feature_run.lines
            say(
                f"features {','.join(f.name for f in chosen)}: {lines['accepted']:,} customers, "
                f"{lines['rejected']:,} rows rejected ({feature_run.seconds:.1f} s)"
            )
            if lines["accepted"] == 0:
                raise ValueError(
                    f"no row of {input_paths} gave features (rejected by reason: "
                    f"{lines['rejected_by_reason']})"
                )
            with run_job(
                MRFeatureStats,
                parts,
                [
                    "--n-features",
                    str(len(chosen)),
                    "--sample-size",
                    str(sample_size),
                    "--seed",
                    str(seed),
                    "--distinct-limit",
                    str(distinct_limit),
                    *_points_args(runner),
                ],
                runner=runner,
                conf_paths=conf_paths,
                progress=say,
            ) as stats_run:
                found = {key: value for row in stats_run.rows() for key, value in row.items()}
                stats_seconds = stats_run.seconds
            data = _feature_data(found, chosen, parts, lines, distinct_limit)
            data.seconds = {"features": feature_run.seconds, "stats": stats_seconds}
            data.runner, data.conf_paths, data.work_dir = runner, conf_paths, work_dir
            say(
                f"statistics of {data.count:,} points, sample of {data.sample.shape[0]:,} "
                f"({stats_seconds:.1f} s)"
            )
            yield data
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _feature_data(found, chosen, parts, lines, distinct_limit):
    stats = found["stats"]
    n = stats["count"]
    means, variances = [], []
    for s1, s2 in zip(stats["sum"], stats["sum_squares"], strict=True):
        mean = exact_to_fraction(s1) / n
        means.append(mean)
        variances.append(max(exact_to_fraction(s2) / n - mean * mean, Fraction(0)))
    mean = np.array([float(m) for m in means])
    variance = np.array([float(v) for v in variances])
    scale = np.sqrt(variance)
    constant = [f.name for f, s in zip(chosen, scale, strict=True) if not s > 0]
    if constant:
        warnings.warn(f"features {constant} are constant: they are left unscaled", stacklevel=3)
        scale = np.where(scale > 0, scale, 1.0)
    sample = np.array([row[1:] for row in found["sample"]], dtype=np.float64)
    return FeatureData(
        parts=parts,
        features=chosen,
        count=n,
        mean=mean,
        scale=scale,
        variance=variance,
        minimum=stats["min"],
        maximum=stats["max"],
        sample=sample.reshape(-1, len(chosen)),
        distinct=len(found["distinct"]),
        distinct_limit=distinct_limit,
        lines=lines,
        seconds={},
        runner="inline",
        conf_paths=None,
        work_dir="",
    )


def _check_k(data, k):
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k={k!r} should be an int >= 1")
    if k > data.count:
        raise TooFewPointsError(f"n_samples={data.count} should be >= k={k}")
    if k > data.distinct_limit:
        raise ValueError(
            f"k={k} is above distinct_limit={data.distinct_limit} of prepared_features: "
            "prepare with a limit >= the largest k"
        )
    if data.distinct < k:
        raise TooFewPointsError(
            f"k={k} is larger than the number of distinct points ({data.distinct}): "
            f"choose k <= {data.distinct}"
        )


def fit_kmeans(
    data,
    k,
    *,
    seed=0,
    n_init=10,
    tol=1e-4,
    max_iter=300,
    init="k-means++",
    progress=None,
):
    """Fit K-Means with one MapReduce run per Lloyd iteration.

    Parameters
    ----------
    data : FeatureData
        From :func:`prepared_features` (its block must still be open).
    k : int
        Number of clusters.
    seed : int
        Seeds the k-means++ runs; the same seed gives the same result on every runner.
    n_init : int
        Seedings tried on the sample; the best (lowest sample inertia) is refined on all
        points.
    tol : float
        Relative tolerance: stop when the total squared shift of the centres is at most
        ``tol`` times the mean variance of the standardised features.
    max_iter : int
        Most Lloyd iterations over all points.
    init : "k-means++" or array-like
        Or explicit ``(k, d)`` starting centres in standardised units (then ``n_init`` is
        not used).
    progress : callable, optional

    Returns
    -------
    KMeansResult

    Raises
    ------
    ValueError
        A bad parameter, ``k`` above the number of points or of distinct points.

    Warns
    -----
    EmptyClusterWarning
        When a cluster is empty after an assignment and is re-seeded.
    """
    say = _say(progress)
    _check_k(data, k)
    if n_init < 1:
        raise ValueError(f"n_init={n_init} should be >= 1")
    if max_iter < 1:
        raise ValueError(f"max_iter={max_iter} should be >= 1")
    if not tol >= 0:
        raise ValueError(f"tol={tol} should be >= 0")
    started = time.perf_counter()
    d = len(data.features)
    if isinstance(init, str):
        if init != "k-means++":
            raise ValueError(f"init={init!r} should be 'k-means++' or an array of centres")
        centroids, init_info = _seed_on_sample(data, k, seed, n_init, tol)
    else:
        centroids = np.array(init, dtype=np.float64)
        if centroids.shape != (k, d) or not np.isfinite(centroids).all():
            raise ValueError(f"init has shape {centroids.shape}; it should be finite, ({k}, {d})")
        init_info = {"method": "given"}
    tol_scaled = tol * float(np.mean(data.variance / data.scale**2))
    history = []
    converged = False
    centroids_file = os.path.join(data.work_dir, f"centroids-k{k}.json")
    n_iter = 0
    last = None
    for n_iter in range(1, max_iter + 1):
        last = _iterate(data, centroids, centroids_file, k)
        new, reseeded = _update(last, centroids, n_iter)
        shift = float(np.sum((new - centroids) ** 2))
        history.append(
            {
                "iteration": n_iter,
                "inertia": last["inertia"],
                "shift": shift,
                "seconds": round(last["seconds"], 3),
                "reseeded": reseeded,
            }
        )
        say(
            f"k={k} iteration {n_iter}: inertia {last['inertia']:,.4f}, shift {shift:.3g} "
            f"({last['seconds']:.1f} s)"
        )
        moved = shift > 0 or reseeded
        centroids = new
        if not moved:
            converged = True
            break
        if shift <= tol_scaled and not reseeded:
            converged = True
            last = _iterate(data, centroids, centroids_file, k)
            history.append(
                {
                    "iteration": "final assignment",
                    "inertia": last["inertia"],
                    "shift": None,
                    "seconds": round(last["seconds"], 3),
                    "reseeded": [],
                }
            )
            break
    else:
        last = _iterate(data, centroids, centroids_file, k)
        history.append(
            {
                "iteration": "final assignment",
                "inertia": last["inertia"],
                "shift": None,
                "seconds": round(last["seconds"], 3),
                "reseeded": [],
            }
        )
        warnings.warn(
            f"k={k}: K-Means did not converge in max_iter={max_iter} iterations "
            f"(last shift {history[-2]['shift']:.3g} > {tol_scaled:.3g})",
            stacklevel=2,
        )
    return KMeansResult(
        k=k,
        centroids=centroids,
        counts=last["counts"],
        inertia=last["inertia"],
        n_iter=n_iter,
        converged=converged,
        tol=tol_scaled,
        history=history,
        init=init_info,
        seconds=time.perf_counter() - started,
    )


def _iterate(data, centroids, centroids_file, k):
    """One :class:`MRKMeansIteration` run: counts, exact sums, inertia and far points."""
    write_centroids(centroids_file, data.mean, data.scale, centroids, far=k)
    with run_job(
        MRKMeansIteration,
        data.parts,
        ["--centroids", centroids_file, *_points_args(data.runner)],
        runner=data.runner,
        conf_paths=data.conf_paths,
    ) as run:
        rows = list(run.rows())
        seconds = run.seconds
    counts = [0] * k
    sums = [None] * k
    sse = Fraction(0)
    far = []
    for row in rows:
        if "far" in row:
            far = row["far"]
            continue
        j = row["cluster"]
        counts[j] = row["count"]
        sums[j] = [exact_to_fraction(s) for s in row["sum"]]
        sse += exact_to_fraction(row["sse"])
    return {"counts": counts, "sums": sums, "inertia": float(sse), "far": far, "seconds": seconds}


def _update(last, centroids, iteration):
    """New centres from an iteration's sums; empty clusters re-seeded (see module doc)."""
    counts = list(last["counts"])
    sums = [list(s) if s is not None else None for s in last["sums"]]
    new = centroids.copy()
    reseeded = []
    far = iter(last["far"])
    for j in range(len(counts)):
        if counts[j]:
            continue
        donor = next((row for row in far if counts[row[1]] > 1), None)
        if donor is None:
            raise RuntimeError(
                f"iteration {iteration}: cluster {j} is empty and no point is left to re-seed it"
            )
        d2, label, *point = donor
        counts[label] -= 1
        sums[label] = [s - Fraction(v) for s, v in zip(sums[label], point, strict=True)]
        counts[j] = 1
        sums[j] = [Fraction(v) for v in point]
        reseeded.append({"cluster": j, "from_cluster": label, "distance2": d2})
        warnings.warn(
            f"iteration {iteration}: cluster {j} was empty; re-seeded with the point farthest "
            f"from its centre (squared distance {d2:.6g}, taken from cluster {label})",
            EmptyClusterWarning,
            stacklevel=3,
        )
    for j, (count, total) in enumerate(zip(counts, sums, strict=True)):
        new[j] = [float(s / count) for s in total]
    return new, reseeded


def _seed_on_sample(data, k, seed, n_init, tol):
    """Best of ``n_init`` k-means++ seedings, each refined by Lloyd on the sample."""
    from sklearn.cluster import kmeans_plusplus

    sample = data.standardise(data.sample)
    if np.unique(sample, axis=0).shape[0] < k:
        raise ValueError(
            f"k={k}: the sample of {sample.shape[0]} points has fewer than {k} distinct "
            "points; raise sample_size"
        )
    tol_sample = tol * float(np.mean(np.var(sample, axis=0)))
    seeds = np.random.SeedSequence(seed).generate_state(n_init)
    best = None
    for trial, trial_seed in enumerate(seeds.tolist()):
        start, _ = kmeans_plusplus(sample, k, random_state=int(trial_seed))
        centres, inertia, iterations = _lloyd_in_memory(sample, start, tol_sample)
        if best is None or inertia < best[1]:
            best = (centres, inertia, iterations, trial)
    centres, inertia, iterations, trial = best
    return centres, {
        "method": "k-means++ on a uniform sample, refined by Lloyd on the sample",
        "sample_size": int(sample.shape[0]),
        "n_init": n_init,
        "best_trial": trial,
        "sample_inertia": inertia,
        "sample_iterations": iterations,
    }


def _lloyd_in_memory(points, centres, tol, max_iter=300):
    """Lloyd's algorithm on a small array (empty clusters keep their centre)."""
    k = centres.shape[0]
    centres = centres.copy()
    iteration = 0
    while iteration < max_iter:
        iteration += 1
        labels, _ = assign(points, centres)
        counts = np.bincount(labels, minlength=k)
        new = centres.copy()
        for f in range(points.shape[1]):
            totals = np.bincount(labels, weights=points[:, f], minlength=k)
            nonempty = counts > 0
            new[nonempty, f] = totals[nonempty] / counts[nonempty]
        shift = float(np.sum((new - centres) ** 2))
        centres = new
        if shift <= tol:
            break
    labels, d2 = assign(points, centres)
    return centres, float(math.fsum(d2.tolist())), iteration


#: MB of pairwise distances the silhouette computes at a time (scikit-learn's default
#: 1,024 MB gives the 5,000-point sample's 200 MB matrix in one piece, and its temporaries).
_SILHOUETTE_WORKING_MB = 32


def _silhouette(sample, labels):
    from sklearn import config_context
    from sklearn.metrics import silhouette_score

    # the same value by rows of distances: measured 158 MB less driver peak for 5,000 points
    with config_context(working_memory=_SILHOUETTE_WORKING_MB):
        return float(silhouette_score(sample, labels))


def fit_k_range(data, ks, *, silhouette_sample=SILHOUETTE_SAMPLE, progress=None, **fit_options):
    """Fit each ``k`` of ``ks`` and pick the one with the best silhouette.

    Parameters
    ----------
    data : FeatureData
    ks : sequence of int
    silhouette_sample : int
        Points of the uniform sample used for the silhouette (it costs their square).
    progress : callable, optional
    **fit_options
        For :func:`fit_kmeans` (``seed``, ``n_init``, ``tol``, ``max_iter``).

    Returns
    -------
    KSelection
        ``table`` has one row per k: ``k``, ``inertia``, ``silhouette`` (None for k = 1),
        ``iterations``, ``converged``, ``seconds``. With one k, that k is chosen; else
        the highest silhouette (ties to the smaller k).
    """
    ks = parse_k(ks) if not isinstance(ks, (list, tuple)) else sorted(set(ks))
    for k in ks:
        _check_k(data, k)
    sample = data.standardise(data.sample[:silhouette_sample])
    results, table = {}, []
    for k in ks:
        result = fit_kmeans(data, k, progress=progress, **fit_options)
        labels, _ = assign(sample, result.centroids)
        distinct = np.unique(labels).shape[0]
        silhouette = _silhouette(sample, labels) if 2 <= distinct <= sample.shape[0] - 1 else None
        results[k] = result
        table.append(
            {
                "k": k,
                "inertia": result.inertia,
                "silhouette": silhouette,
                "iterations": result.n_iter,
                "converged": result.converged,
                "seconds": round(result.seconds, 3),
            }
        )
        _say(progress)(
            f"k={k}: inertia {result.inertia:,.4f}, silhouette "
            f"{'n/a' if silhouette is None else f'{silhouette:.4f}'}, "
            f"{result.n_iter} iteration(s)"
        )
    scored = [row for row in table if row["silhouette"] is not None]
    best_k = max(scored, key=lambda r: (r["silhouette"], -r["k"]))["k"] if scored else ks[0]
    return KSelection(results=results, table=table, best_k=best_k)


def label_customers(data, result):
    """Label every customer with ``result``'s nearest centre, in the driver's memory.

    For tests and small data: the segments stage never calls it (its tasks write the
    labelled rows, :mod:`mr_jobs.kmeans_rows`).

    Returns
    -------
    (list of dict, float)
        ``{"customer_id", "segment", "distance"}`` rows in feature-file order, and the
        job's seconds.
    """
    path = os.path.join(data.work_dir, f"final-k{result.k}.json")
    write_centroids(path, data.mean, data.scale, result.centroids, far=0)
    with run_job(
        MRKMeansLabels,
        data.parts,
        ["--centroids", path, *_points_args(data.runner)],
        runner=data.runner,
        conf_paths=data.conf_paths,
    ) as run:
        return list(run.rows()), run.seconds
