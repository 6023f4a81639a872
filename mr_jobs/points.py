"""Feature points on disk and the nearest-centroid assignment, shared by the K-Means jobs.

A feature file is what :class:`mr_jobs.kmeans_features.MRKMeansFeatures` writes: one line
per customer, first the features (transformed, not yet standardised) as the big-endian
IEEE 754 bit patterns of the float64 values, 16 lowercase hex digits each, with no
separator, then a tab and the customer id as a JSON string::

    405e0000000000003ff193ea7aad030a40119fd4c1bc6b5e\t"C000001"

(120.0, log1p(2) and log1p(81.49) here; :func:`format_point` writes it). The bit patterns
read back exactly, and being fixed-width they are decoded with a few vectorised numpy
operations, several times faster than parsing decimal text: a Lloyd iteration reads every
point, so parsing was most of its map time. Jobs that take these files work on a whole
file at a time (``mapper_raw``, or the lines of a task with ``--line-input``).
"""

import struct

try:
    import numpy as np
except ImportError as e:  # a task on a node without numpy: say what to install
    raise ImportError(
        "the K-Means jobs need numpy in the Python that runs the tasks "
        "(python_bin of the runner): pip install numpy on every node"
    ) from e

__all__ = ["read_points", "assign", "standardise", "format_point", "local_path"]

_HEX_DIGITS = 16
_NEWLINE, _TAB = 10, 9
_NIBBLE = np.full(256, 255, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"0123456789", dtype=np.uint8)] = np.arange(10)
_NIBBLE[np.frombuffer(b"abcdef", dtype=np.uint8)] = np.arange(10, 16)


def local_path(path):
    """A task's input path as a local path (the inline runner hands ``file://`` URIs to
    ``mapper_raw``)."""
    if path.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        return unquote(urlsplit(path).path)
    return path


def format_point(customer_id_json, values):
    """One feature line (without the newline): the hex bit patterns, a tab, the JSON id."""
    return f"{struct.pack(f'>{len(values)}d', *values).hex()}\t{customer_id_json}"


def read_points(path, n_features, *, with_ids=False):
    """Read a feature file.

    Parameters
    ----------
    path : str or io.BytesIO
        A local file (tasks of ``mapper_raw`` jobs get one), or the lines in a buffer.
    n_features : int
        How many features each line has.
    with_ids : bool
        Also return the ids, as their JSON text.

    Returns
    -------
    (numpy.ndarray or None, numpy.ndarray)
        The ids (object array of JSON strings) or None, and an ``(n, n_features)`` float64
        array. An empty file gives ``n = 0``.

    Raises
    ------
    ValueError
        A line that is not ``n_features`` hex bit patterns, a tab and an id, or a value
        that is not finite; the message names the file and the line.
    """
    if hasattr(path, "getvalue"):
        data, name = path.getvalue(), "<lines>"
    else:
        with open(local_path(path), "rb") as f:
            data, name = f.read(), path
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size and buf[-1] != _NEWLINE:
        buf = np.append(buf, np.uint8(_NEWLINE))
    ends = np.flatnonzero(buf == _NEWLINE)
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    keep = ends > starts  # blank lines (a trailing one from a line-input task) carry nothing
    starts, ends = starts[keep], ends[keep]
    width = _HEX_DIGITS * n_features
    if starts.size == 0:
        ids = np.empty(0, dtype=object) if with_ids else None
        return ids, np.empty((0, n_features))
    bad = ends - starts <= width + 1
    bad[~bad] = buf[starts[~bad] + width] != _TAB
    if not bad.any():
        # the first `width` bytes of every line, gathered through a sliding window view
        hexes = np.lib.stride_tricks.sliding_window_view(buf, width)[starts]
        nibbles = _NIBBLE[hexes]
        bad = (nibbles == 255).any(axis=1)
    if bad.any():
        raise ValueError(
            f"{name}: line {int(np.flatnonzero(bad)[0]) + 1} is not {n_features} hex "
            "float64 bit patterns, a tab and an id"
        )
    octets = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]  # (n, 8 * n_features) bytes
    points = np.ascontiguousarray(octets).view(">f8").astype(np.float64)
    if not np.isfinite(points).all():
        row = int(np.flatnonzero(~np.isfinite(points).all(axis=1))[0])
        raise ValueError(f"{name}: line {row + 1} has a value that is not finite")
    ids = None
    if with_ids:
        raw = data.decode("utf-8")
        ids = np.array([line[width + 1 :] for line in raw.split("\n") if line], dtype=object)
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
