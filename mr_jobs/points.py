"""Feature points on disk and the nearest-centroid assignment, shared by the K-Means jobs.

A feature file is what :class:`mr_jobs.kmeans_features.MRKMeansFeatures` writes: one line
per customer, tab-separated, the customer id as a JSON string and then one ``repr`` float
per feature (the transformed value, not yet standardised)::

    "C000001"\t120.0\t1.0986122886681098\t4.406719247264253

``repr`` and the round-trip parser make the floats read back exactly. Jobs that take these
files use ``mapper_raw``: a task gets a whole file and works on it with numpy.
"""

import csv
import os

try:
    import numpy as np
except ImportError as e:  # a task on a node without numpy: say what to install
    raise ImportError(
        "the K-Means jobs need numpy and pandas in the Python that runs the tasks "
        "(python_bin of the runner): pip install numpy pandas on every node"
    ) from e

__all__ = ["read_points", "assign", "standardise", "format_point"]


def _pandas_major():
    try:
        from importlib.metadata import version

        return int(version("pandas").split(".")[0])
    except Exception:  # unknown: ask for the exact parser, which every version has
        return 0


# pandas < 3 parses floats exactly only with the round-trip parser; pandas 3 always does
# and deprecates the option
_EXACT_FLOATS = {"float_precision": "round_trip"} if _pandas_major() < 3 else {}


def format_point(customer_id_json, values):
    """One feature line (without the newline): JSON id, then ``repr`` of each value."""
    return "\t".join([customer_id_json, *map(repr, values)])


def read_points(path, n_features, *, with_ids=False):
    """Read a feature file.

    Parameters
    ----------
    path : str or io.BytesIO
        A local file (tasks of ``mapper_raw`` jobs get one), or the lines in a buffer.
    n_features : int
        How many features each line has; a line with another count raises ValueError.
    with_ids : bool
        Also return the ids, as their JSON text.

    Returns
    -------
    (numpy.ndarray or None, numpy.ndarray)
        The ids (object array of JSON strings) or None, and an ``(n, n_features)`` float64
        array. An empty file gives ``n = 0``.
    """
    import pandas as pd

    size = path.getbuffer().nbytes if hasattr(path, "getbuffer") else os.path.getsize(path)
    if size == 0:
        ids = np.empty(0, dtype=object) if with_ids else None
        return ids, np.empty((0, n_features))
    columns = list(range(n_features + 1)) if with_ids else list(range(1, n_features + 1))
    try:
        frame = pd.read_csv(
            path,
            sep="\t",
            header=None,
            usecols=columns,
            quoting=csv.QUOTE_NONE,
            dtype={0: object} if with_ids else np.float64,
            **_EXACT_FLOATS,
            engine="c",
            na_filter=False,
        )
    except ValueError as e:
        raise ValueError(f"{path}: not a feature file with {n_features} features: {e}") from None
    if with_ids:
        ids = frame[0].to_numpy(dtype=object)
        points = frame[columns[1:]].to_numpy(dtype=np.float64)
    else:
        ids = None
        points = frame.to_numpy(dtype=np.float64)
    if points.shape[1] != n_features or not np.isfinite(points).all():
        raise ValueError(f"{path}: not a feature file with {n_features} finite features")
    return ids, points


def standardise(points, mean, scale):
    """``(points - mean) / scale``, elementwise (a new array)."""
    z = np.subtract(points, np.asarray(mean, dtype=np.float64))
    z /= np.asarray(scale, dtype=np.float64)
    return z


def assign(z, centroids):
    """Nearest centroid of every point, and the squared distance to it.

    Distances are computed coordinate by coordinate, ``sum((z - c)**2)``, never through a
    matrix product, so a point's distance is the same float on every machine and in every
    chunk. Ties go to the lowest centroid index.

    Parameters
    ----------
    z : numpy.ndarray
        ``(n, d)`` points.
    centroids : numpy.ndarray
        ``(k, d)`` centroids.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``labels`` (int64, ``n``) and ``d2`` (float64, ``n``).
    """
    n = z.shape[0]
    k = centroids.shape[0]
    best = np.full(n, np.inf)
    labels = np.zeros(n, dtype=np.int64)
    scratch = np.empty_like(z)
    d2 = np.empty(n)
    for j in range(k):
        np.subtract(z, centroids[j], out=scratch)
        np.multiply(scratch, scratch, out=scratch)
        d2[:] = scratch[:, 0]
        for f in range(1, z.shape[1]):
            d2 += scratch[:, f]
        closer = d2 < best
        best[closer] = d2[closer]
        labels[closer] = j
    return labels, best
