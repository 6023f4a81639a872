"""Bounded side outputs the stages publish for the report (:mod:`models.report`).

A chart of a per-customer quantity (a distribution, a scatter, a ROC curve) must not read
every customer: the stages publish a small summary of what their driver already holds
(a seeded subsample of a bounded sample, a histogram, the points of a curve), and the
report reads only those. Every function here is bounded by its arguments, never by the
number of customers, and deterministic for the same input and seed.
"""

import math

import numpy as np

__all__ = [
    "REPORT_SAMPLE_SIZE",
    "curve_rows",
    "gain_curve",
    "histogram_rows",
    "roc_curve_points",
    "subsample_positions",
]

#: The most rows of any sample a stage publishes for the report.
REPORT_SAMPLE_SIZE = 2_000

#: Points a published curve is reduced to (the report draws them as lines).
CURVE_POINTS = 101


def subsample_positions(n, size=REPORT_SAMPLE_SIZE, seed=0):
    """Sorted positions of a uniform subsample (without replacement) of ``n`` rows.

    Parameters
    ----------
    n : int
        Rows to choose from.
    size : int
        At most this many positions (all ``n`` when there are no more).
    seed : int
        Seeds :func:`numpy.random.default_rng`: the same positions for the same ``n``.

    Returns
    -------
    numpy.ndarray of int
    """
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(int(seed))
    return np.sort(rng.choice(n, size=size, replace=False))


def histogram_rows(values, edges):
    """Counts of ``values`` in the bins of ``edges``, as rows for a CSV.

    Parameters
    ----------
    values : array-like of float
    edges : array-like of float
        Increasing bin edges; a value equal to the last edge falls in the last bin, and
        values outside ``[edges[0], edges[-1]]`` are not counted (:func:`numpy.histogram`).

    Returns
    -------
    list of dict
        ``{"lower", "upper", "count"}`` per bin.
    """
    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=np.asarray(edges))
    return [
        {"lower": float(lo), "upper": float(hi), "count": int(c)}
        for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)
    ]


def roc_curve_points(y_true, scores, points=CURVE_POINTS):
    """The ROC curve of ``scores`` for ``y_true`` reduced to at most ``points`` points.

    Parameters
    ----------
    y_true : array-like of {0, 1}
    scores : array-like of float
        Higher = more likely positive.
    points : int

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        False and true positive rates, from (0, 0) to (1, 1); empty when either class
        is missing.
    """
    from sklearn.metrics import roc_curve

    y = np.asarray(y_true, dtype=int)
    if y.size == 0 or y.min() == y.max():
        return np.array([]), np.array([])
    fpr, tpr, _ = roc_curve(y, np.asarray(scores, dtype=float))
    return _thinned(fpr, tpr, points)


def gain_curve(y_true, scores, points=CURVE_POINTS):
    """The cumulative gain of ``scores``: the share of all positives found in the top
    share of customers by score, at ``points`` shares from 0 to 1.

    Parameters
    ----------
    y_true : array-like of {0, 1}
    scores : array-like of float
    points : int

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Shares of customers and of positives; empty without a positive.
    """
    y = np.asarray(y_true, dtype=float)
    if y.size == 0 or y.sum() == 0:
        return np.array([]), np.array([])
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    found = np.concatenate([[0.0], np.cumsum(y[order]) / y.sum()])
    share = np.linspace(0.0, 1.0, points)
    taken = np.ceil(share * y.size).astype(int)
    return share, found[taken]


def _thinned(x, y, points):
    """``(x, y)`` keeping at most ``points`` of them, the first and last included."""
    if x.size <= points:
        return x, y
    keep = np.unique(np.linspace(0, x.size - 1, points).round().astype(int))
    return x[keep], y[keep]


def curve_rows(curve, x, y):
    """Rows ``{"curve", "x", "y"}`` of one named curve, for a CSV of several curves."""
    return [
        {"curve": curve, "x": float(a), "y": float(b)}
        for a, b in zip(x, y, strict=True)
        if math.isfinite(a) and math.isfinite(b)
    ]
