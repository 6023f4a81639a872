"""Exact sums of float64 values, so that a reduced total does not depend on how the input
was split.

A float sum depends on the order of its terms: two runners that split the same points into
different mapper chunks would reduce centroids that differ in the last bits, and a later
assignment could flip. Here every total is exact. A finite float64 is ``M * 2**(e - 53)``
with ``M`` a 53-bit integer (``numpy.frexp``); ``M`` is split into a high and a low part
of at most 27 bits, and the parts are summed per (group, exponent) with ``numpy.bincount``.
Those float64 sums of integers below ``2**27`` are exact while fewer than ``2**26`` terms
share a bin (arrays are summed in chunks of ``2**18``), and the bins are then combined in
Python integers.

An exact sum travels as a JSON pair ``[mantissa, exponent]`` (a Python int of any size and
an int) meaning ``mantissa * 2**exponent``. :func:`add_exact` adds two of them exactly;
:func:`exact_to_fraction` and :func:`exact_to_float` read one (the float correctly
rounded). Summing these pairs in any order, from any split of the data, gives the same
pair up to normalisation, and therefore the same float.
"""

from fractions import Fraction

import numpy as np

__all__ = ["ZERO", "exact_group_sums", "add_exact", "exact_to_fraction", "exact_to_float"]

#: The exact zero.
ZERO = (0, 0)

_HALF_BITS = 27
_MANTISSA_BITS = 53
# terms per bincount call: far below the 2**26 that keeps each bin exact, and small
# enough that the temporaries stay in cache and are reused (a chunk of 2**25 terms was
# 6 times slower, most of it first-touch page faults on fresh memory)
_CHUNK = 1 << 18


def exact_group_sums(values, groups, n_groups):
    """Exact sum of ``values`` per group.

    Parameters
    ----------
    values : numpy.ndarray
        Finite float64 values, any shape.
    groups : numpy.ndarray
        Non-negative ints below ``n_groups``, the same shape as ``values``.
    n_groups : int

    Returns
    -------
    list of (int, int)
        ``n_groups`` exact sums ``(mantissa, exponent)``; an empty group sums to
        :data:`ZERO`.

    Notes
    -----
    Prior validation is assumed: NaN or infinite values give meaningless sums.
    """
    values = np.ascontiguousarray(values, dtype=np.float64).ravel()
    groups = np.ascontiguousarray(groups, dtype=np.int64).ravel()
    totals = [0] * n_groups
    base = None
    parts = []
    for start in range(0, values.size, _CHUNK):
        part = _chunk_sums(values[start : start + _CHUNK], groups[start : start + _CHUNK], n_groups)
        if part is not None:
            parts.append(part)
            base = part[0] if base is None else min(base, part[0])
    if base is None:
        return [ZERO] * n_groups
    for e_min, sums in parts:
        shift = e_min - base
        for g, total in sums.items():
            totals[g] += total << shift
    return [(t, base) if t else ZERO for t in totals]


def _chunk_sums(values, groups, n_groups):
    """``(base exponent, {group: int total})`` of one chunk, or None when it is all zeros."""
    nonzero = values != 0.0
    if not nonzero.all():
        values, groups = values[nonzero], groups[nonzero]
    if values.size == 0:
        return None
    mantissa, exponent = np.frexp(values)
    m = (mantissa * float(1 << _MANTISSA_BITS)).astype(np.int64)  # exact: 53 bits
    high = m >> _HALF_BITS  # floor division, also for negative m
    low = m - (high << _HALF_BITS)  # in [0, 2**27)
    e_min = int(exponent.min())
    span = int(exponent.max()) - e_min + 1
    key = groups * span + (exponent - e_min)
    size = n_groups * span
    high_sums = np.bincount(key, weights=high.astype(np.float64), minlength=size)
    low_sums = np.bincount(key, weights=low.astype(np.float64), minlength=size)
    totals = {}
    for index in np.flatnonzero((high_sums != 0) | (low_sums != 0)).tolist():
        g, offset = divmod(index, span)
        value = (int(high_sums[index]) << _HALF_BITS) + int(low_sums[index])
        totals[g] = totals.get(g, 0) + (value << offset)
    return e_min - _MANTISSA_BITS, totals


def add_exact(a, b):
    """Exact ``a + b`` of two ``(mantissa, exponent)`` pairs (lists are accepted)."""
    (ma, ea), (mb, eb) = a, b
    if not ma:
        return (mb, eb) if mb else ZERO
    if not mb:
        return (ma, ea)
    e = min(ea, eb)
    total = (ma << (ea - e)) + (mb << (eb - e))
    return (total, e) if total else ZERO


def exact_to_fraction(pair):
    """The exact value of a ``(mantissa, exponent)`` pair as a :class:`fractions.Fraction`."""
    m, e = pair
    return Fraction(m << e) if e >= 0 else Fraction(m, 1 << -e)


def exact_to_float(pair):
    """The value of a ``(mantissa, exponent)`` pair as the nearest float."""
    return float(exact_to_fraction(pair))
