"""One Lloyd iteration of K-Means over feature files.

Input: feature files (:mod:`mr_jobs.points`), each read whole (``mapper_raw``) and worked
on with numpy. ``--centroids FILE`` (shipped with the job, see :func:`write_centroids`) is
one JSON object::

    {"mean": [...], "scale": [...], "centroids": [[...], ...], "far": 8}

Points are standardised, ``(x - mean) / scale``, and each goes to its nearest centroid
(squared Euclidean distance; ties to the lowest index; :func:`mr_jobs.points.assign`).
Each mapper combines in memory and emits one record, under a single key, holding per
non-empty cluster the count, the exact per-coordinate sums and the exact sum of squared
distances (:mod:`mr_jobs.exact_sums`), plus its ``far`` points farthest from their
centroids. The reducer adds them. Output, one JSON object per line::

    {"cluster": 0, "count": 812, "sum": [[m, e], ...], "sse": [m, e]}
    {"far": [[d2, label, x1, x2, ...], ...]}

A cluster that received no point has no line: the driver (:mod:`models.kmeans`) sees it
empty and re-seeds it from the ``far`` points, the farthest first (ties broken by the
coordinates). The new centroid of a cluster is its exact sum divided by its count, so the
result does not depend on how the input was split.
"""

import heapq
import json

import numpy as np

from mr_jobs.base import FeatureFileJob
from mr_jobs.exact_sums import ZERO, add_exact, exact_group_sums
from mr_jobs.points import assign, read_points, standardise
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol

__all__ = ["MRKMeansIteration", "read_centroids", "write_centroids"]

# rows assigned at a time: the temporaries stay small and are reused
_BLOCK = 1 << 16
# every mapper's partial sums go to one reducer: they are k small records per map task,
# and one reduce task costs one process start (the local runner starts a task per key
# group split, which cost about half a second per iteration with a key per cluster)
_KEY = "clusters"


def write_centroids(path, mean, scale, centroids, far):
    """Write the ``--centroids`` file of :class:`MRKMeansIteration` (and of the labelling
    job, which ignores ``far``)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(
            {
                "mean": [float(v) for v in mean],
                "scale": [float(v) for v in scale],
                "centroids": [[float(v) for v in row] for row in centroids],
                "far": int(far),
            },
            f,
        )


def read_centroids(path):
    """``(mean, scale, centroids, far)`` from a ``--centroids`` file, checked.

    Raises
    ------
    ValueError
        The file is not such an object, the shapes disagree, or a value is not finite.
    """
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    try:
        mean = np.asarray(spec["mean"], dtype=np.float64)
        scale = np.asarray(spec["scale"], dtype=np.float64)
        centroids = np.asarray(spec["centroids"], dtype=np.float64)
        far = int(spec.get("far", 0))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a centroids file ({e})") from None
    d = mean.shape[0]
    if (
        mean.ndim != 1
        or scale.shape != (d,)
        or centroids.ndim != 2
        or centroids.shape[1] != d
        or centroids.shape[0] < 1
    ):
        raise ValueError(
            f"{path}: shapes mean={mean.shape}, scale={scale.shape}, "
            f"centroids={centroids.shape} do not fit together"
        )
    if not (np.isfinite(mean).all() and np.isfinite(centroids).all() and (scale > 0).all()):
        raise ValueError(f"{path}: values must be finite and every scale > 0")
    return mean, scale, centroids, far


class MRKMeansIteration(FeatureFileJob):
    """Assign every point to its nearest centroid and reduce the new cluster sums."""

    INTERNAL_PROTOCOL = CompactJSONProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_file_arg("--centroids", required=True, help="JSON centroids file")

    def steps(self):
        return [
            self.points_step(
                mapper_init=self.mapper_init_centroids,
                reducer_init=self.reducer_init_centroids,
                reducer=self.reducer_sum_clusters,
            )
        ]

    def mapper_init_centroids(self):
        self.mean, self.scale, self.centroids, self.far = read_centroids(self.options.centroids)

    reducer_init_centroids = mapper_init_centroids

    def map_points(self, path):
        k, d = self.centroids.shape
        _, x = read_points(path, d)
        if x.shape[0] == 0:
            return
        counts = np.zeros(k, dtype=np.int64)
        sums = [ZERO] * (k * (d + 1))  # per cluster: d coordinate sums, then the error
        far = []
        offsets = np.arange(d + 1)
        for start in range(0, x.shape[0], _BLOCK):
            z = standardise(x[start : start + _BLOCK], self.mean, self.scale)
            labels, d2 = assign(z, self.centroids)
            counts += np.bincount(labels, minlength=k)
            values = np.empty((z.shape[0], d + 1))
            values[:, :d] = z
            values[:, d] = d2
            groups = labels[:, None] * (d + 1) + offsets
            block = exact_group_sums(values, groups, k * (d + 1))
            sums = [add_exact(a, b) for a, b in zip(sums, block, strict=True)]
            if self.far:
                far += _farthest(z, labels, d2, self.far)
        clusters = {
            j: [int(counts[j]), sums[j * (d + 1) : (j + 1) * (d + 1)]]
            for j in np.flatnonzero(counts).tolist()
        }
        far = heapq.nsmallest(self.far, far, key=_far_order) if self.far else []
        yield _KEY, [[[j, n, [list(s) for s in row]] for j, (n, row) in clusters.items()], far]

    def reducer_sum_clusters(self, _key, values):
        d = self.centroids.shape[1]
        counts, sums, far = {}, {}, []
        for clusters, part_far in values:
            for j, n, row in clusters:
                counts[j] = counts.get(j, 0) + n
                before = sums.get(j, [ZERO] * (d + 1))
                sums[j] = [add_exact(a, b) for a, b in zip(before, row, strict=True)]
            far += part_far
        for j in sorted(counts):
            row = sums[j]
            yield (
                None,
                {
                    "cluster": j,
                    "count": counts[j],
                    "sum": [list(s) for s in row[:d]],
                    "sse": list(row[d]),
                },
            )
        if self.far:
            yield None, {"far": heapq.nsmallest(self.far, far, key=_far_order)}


def _far_order(row):
    """Farthest first; equal distances by the coordinates, then the label."""
    return (-row[0], row[2:], row[1])


def _farthest(z, labels, d2, far):
    """The ``far`` points farthest from their centroid as ``[d2, label, *coordinates]``."""
    n = z.shape[0]
    if n > far:
        # every point at least as far as the far-th distance, so ties are kept
        threshold = np.partition(d2, n - far)[n - far]
        chosen = np.flatnonzero(d2 >= threshold)
    else:
        chosen = np.arange(n)
    rows = [[float(d2[i]), int(labels[i]), *z[i].tolist()] for i in chosen.tolist()]
    return heapq.nsmallest(far, rows, key=_far_order)


if __name__ == "__main__":
    MRKMeansIteration.run()
