"""Exact RFM quintile thresholds by MapReduce: no per-customer row passes through the driver.

:func:`models.rfm_scores.quintile_scores` gives a value the score
``min(5, 1 + floor(5k / n))``, ``k`` the number of values strictly worse. With ``a`` the
``n`` values sorted ascending and ``m_s = ceil((s - 1) n / 5)`` for ``s = 2..5``:

- higher is better (``orders``, ``total_value``): ``k = #(< v)``, and a value scores
  ``>= s`` exactly when ``m_s == 0`` or ``v > a[m_s - 1]``;
- lower is better (``recency_days``): ``k = #(> v)``, and a value scores ``>= s`` exactly
  when ``m_s == 0`` or ``v < a[n - m_s]``.

(``1 + floor(5k/n) >= s`` iff ``5k >= (s - 1) n`` iff ``k >= m_s``; ``#(< v) >= m`` iff
the ``m``-th smallest value is below ``v``.) So every score depends only on ``n`` and four
order statistics per dimension (:func:`wanted_ranks`), which :func:`exact_thresholds`
finds by radix selection with :class:`mr_jobs.rfm_thresholds.MRValueHistogram`, and
:func:`scores_from_thresholds` applies.

Radix selection
---------------
Values are mapped to order-preserving 64-bit keys (:func:`mr_jobs.rfm_thresholds.value_key`).
Pass 1 counts the keys of each dimension by their top ``bits_per_pass`` bits, with the
smallest and largest key of each bucket. From the cumulative counts the driver finds the
bucket holding each wanted rank and the rank inside it. A bucket whose smallest and largest
keys are equal resolves its ranks at once; otherwise every key in it shares the common
prefix of those two keys (at least the bucket's own bits, often many more: recency days
differ in their last 10 bits only), and the next pass counts only the keys under that
prefix (at most four per dimension), by their next ``bits_per_pass`` bits. A prefix of
64 bits is a single key, so at most ``ceil(64 / bits_per_pass)`` passes are needed; the
loop stops when every wanted rank of every dimension is one key. The driver holds the
buckets of one pass (at most ``2**bits_per_pass`` per open prefix, and never more than
the distinct keys present), never a row per customer.
"""

import json
import os
import tempfile
from collections.abc import Mapping

import numpy as np

from models.inputs import expand_parts
from models.job_runner import run_job
from mr_jobs.rfm_thresholds import DIMENSIONS, KEY_BITS, MRValueHistogram, key_value

__all__ = [
    "HIGHER_IS_BETTER",
    "exact_thresholds",
    "scores_from_thresholds",
    "wanted_ranks",
]

#: The direction of each dimension, as :func:`models.rfm_scores.score_customers` scores it.
HIGHER_IS_BETTER = {"recency_days": False, "orders": True, "total_value": True}


def wanted_ranks(n, higher_is_better):
    """The 0-based ascending ranks of the four order statistics that set scores 2..5.

    Parameters
    ----------
    n : int
        Number of values (>= 0).
    higher_is_better : bool

    Returns
    -------
    list of (int or None)
        For ``s = 2..5``: ``m_s - 1`` (higher is better) or ``n - m_s`` (lower is better),
        with ``m_s = ceil((s - 1) n / 5)``; None when ``m_s == 0`` (every value scores
        ``>= s``, which happens only for ``n == 0``).

    Examples
    --------
    >>> wanted_ranks(10, True), wanted_ranks(10, False)
    ([1, 3, 5, 7], [8, 6, 4, 2])
    >>> wanted_ranks(2, True)
    [0, 0, 1, 1]
    """
    ranks = []
    for s in range(2, 6):
        m = -((-(s - 1) * n) // 5)  # ceil without floats
        ranks.append(None if m == 0 else (m - 1 if higher_is_better else n - m))
    return ranks


def scores_from_thresholds(values, thresholds, higher_is_better):
    """Score values 1..5 with the thresholds of :func:`exact_thresholds`.

    Parameters
    ----------
    values : array-like of numbers, 1-D
    thresholds : sequence of 4 (number or None), or mapping
        For scores 2..5, the order statistic a value must beat (strictly above when
        higher is better, strictly below otherwise); None means every value reaches the
        score. A mapping is one dimension of :func:`exact_thresholds`' result (its
        ``"thresholds"`` are used).
    higher_is_better : bool

    Returns
    -------
    numpy.ndarray of int64
        Equal to :func:`models.rfm_scores.quintile_scores` of the values the thresholds
        were computed from.

    Raises
    ------
    ValueError
        If ``thresholds`` does not hold four entries, or ``values`` is not 1-D.
    """
    if isinstance(thresholds, Mapping):
        thresholds = thresholds["thresholds"]
    thresholds = list(thresholds)
    if len(thresholds) != 4:
        raise ValueError(f"thresholds={thresholds!r} should hold 4 entries (scores 2..5)")
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"values: expected a 1-D array, got shape {arr.shape}")
    scores = np.ones(arr.shape[0], dtype=np.int64)
    for t in thresholds:
        if t is None:
            scores += 1
        elif higher_is_better:
            scores += arr > t
        else:
            scores += arr < t
    return scores


def exact_thresholds(rfm_paths, runner="inline", conf_paths=None, bits_per_pass=16):
    """The exact quintile thresholds of ``recency_days``, ``orders`` and ``total_value``.

    Parameters
    ----------
    rfm_paths : list of str
        RFM rows: JSON-lines files, or directories (such as the RFM stage's output) of
        which only the ``part-*`` files are read; local or ``hdfs://``.
    runner : str
        mrjob runner (see :func:`models.job_runner.run_job`).
    conf_paths : list of str or None
        mrjob config files (see :func:`models.job_runner.run_job`).
    bits_per_pass : int, default 16
        Key bits each pass buckets by, 1..32: fewer passes against more buckets.

    Returns
    -------
    dict
        Per dimension: ``{"n": int, "higher_is_better": bool, "ranks": [4 x int or None],
        "thresholds": [4 x value or None], "passes": int}``: the ranks of
        :func:`wanted_ranks`, the values at those ranks of the sorted column (int for
        ``recency_days`` and ``orders``, float for ``total_value``) and the number of
        passes that dimension needed (the job ran ``max`` of them).

    Raises
    ------
    ValueError
        If ``bits_per_pass`` is out of range, a directory has no ``part-*`` files, a line
        (other than a blank one, which is skipped) is not a JSON object, or a value is
        missing, NaN or not a number (naming the column and how many, as
        :func:`models.rfm_scores.quintile_scores` does).
    RuntimeError
        If the counts of a pass disagree with the previous one (the input changed).

    Examples
    --------
    >>> found = exact_thresholds(["rfm-output/"])  # doctest: +SKIP
    >>> scores_from_thresholds(orders, found["orders"], True)  # doctest: +SKIP
    """
    if isinstance(bits_per_pass, bool) or not isinstance(bits_per_pass, int):
        raise ValueError(f"bits_per_pass={bits_per_pass!r} should be an int in 1..32")
    if not 1 <= bits_per_pass <= 32:
        raise ValueError(f"bits_per_pass={bits_per_pass} should be in 1..32")
    rfm_paths = expand_parts(rfm_paths)
    searches = None
    passes = 0
    with tempfile.TemporaryDirectory(prefix="crm-rfm-thresholds-") as tmp:
        while searches is None or any(s.open_prefixes() for s in searches.values()):
            passes += 1
            plan = (
                {dim: [[0, 0, bits_per_pass]] for dim in DIMENSIONS}
                if searches is None
                else {dim: s.open_prefixes() for dim, s in searches.items()}
            )
            n, buckets = _run_pass(rfm_paths, plan, tmp, passes, runner, conf_paths)
            if searches is None:
                searches = {dim: _Search(dim, n.get(dim, 0), bits_per_pass) for dim in DIMENSIONS}
            for dim, search in searches.items():
                if n.get(dim, 0) != search.n:
                    raise RuntimeError(
                        f"{dim}: pass {passes} counted n={n.get(dim, 0)}, pass 1 n={search.n}: "
                        "the input changed between passes"
                    )
                search.advance(buckets.get(dim, {}), passes)
    return {dim: search.result() for dim, search in searches.items()}


def _run_pass(rfm_paths, plan, tmp, number, runner, conf_paths):
    """Run one histogram pass with ``plan``; return ``(n per dimension, buckets)``,
    ``buckets[dim][(prefix, prefix_bits)]`` a list of ``(bucket, count, min, max)``.
    Raises ValueError for rejected lines and invalid values."""
    prefixes = os.path.join(tmp, f"prefixes-{number}.json")
    with open(prefixes, "w", encoding="utf-8") as f:
        json.dump(plan, f)
    n, invalid, buckets = {}, {}, {}
    with run_job(
        MRValueHistogram,
        list(rfm_paths),
        ["--prefixes", prefixes],
        runner=runner,
        conf_paths=conf_paths,
    ) as run:
        lines = run.lines
        for row in run.rows():
            if row[0] == "n":
                n[row[1]] = row[2]
            elif row[0] == "invalid":
                invalid.setdefault(row[1], {})[row[2]] = row[3]
            else:
                _, dim, prefix_bits, prefix, bucket, count, low, high = row
                by_prefix = buckets.setdefault(dim, {})
                by_prefix.setdefault((prefix, prefix_bits), []).append((bucket, count, low, high))
    _check_input(lines, invalid)
    return n, buckets


def _check_input(lines, invalid):
    """ValueError naming the rejected lines or the first column with invalid values."""
    by_reason = {k: v for k, v in lines["rejected_by_reason"].items() if k != "blank"}
    if by_reason:
        count = sum(by_reason.values())
        raise ValueError(
            f"{count} RFM line{'s' if count != 1 else ''} rejected (by reason: {by_reason}); "
            "thresholds need every customer's row"
        )
    for dim in DIMENSIONS:
        if dim in invalid:
            count = sum(invalid[dim].values())
            missing = invalid[dim].get("missing", 0)
            detail = ", ".join(f"{reason}: {c}" for reason, c in sorted(invalid[dim].items()))
            what = "missing (NaN)" if missing == count else "invalid"
            raise ValueError(
                f"{dim} has {count} {what} value{'s' if count != 1 else ''} ({detail}); "
                "scores need a value for every customer"
            )


class _Search:
    """The radix selection of one dimension's wanted ranks (see the module docstring).

    ``pending`` maps each unresolved rank to ``(prefix, prefix_bits, rank under it)``;
    ``keys`` maps each resolved rank to its key. Prior validation is assumed.
    """

    def __init__(self, dim, n, bits_per_pass):
        self.dim = dim
        self.kind = DIMENSIONS[dim]
        self.n = n
        self.bits_per_pass = bits_per_pass
        self.higher_is_better = HIGHER_IS_BETTER[dim]
        self.ranks = wanted_ranks(n, self.higher_is_better)
        self.pending = {r: (0, 0, r) for r in set(self.ranks) if r is not None}
        self.keys = {}
        self.passes = 0

    def open_prefixes(self):
        """``[prefix, prefix_bits, bits]`` for the next pass, one per pending prefix."""
        opened = sorted({(prefix, bits) for prefix, bits, _ in self.pending.values()})
        return [[p, b, min(self.bits_per_pass, KEY_BITS - b)] for p, b in opened]

    def advance(self, buckets, number):
        """Resolve or narrow every pending rank from one pass's ``buckets``."""
        if self.pending or not self.passes:
            self.passes = number
        if not self.pending:
            return
        pending = {}
        for rank, (prefix, prefix_bits, inside) in self.pending.items():
            found = _bucket_holding(buckets.get((prefix, prefix_bits), ()), inside)
            if found is None:
                raise RuntimeError(
                    f"{self.dim}: rank {rank} not found under prefix {prefix:#x}/{prefix_bits}: "
                    "the input changed between passes"
                )
            before, low, high = found
            if low == high:
                self.keys[rank] = low
            else:
                common = KEY_BITS - (low ^ high).bit_length()
                pending[rank] = (low >> (KEY_BITS - common), common, inside - before)
        self.pending = pending

    def result(self):
        """This dimension's entry of :func:`exact_thresholds`' result."""
        return {
            "n": self.n,
            "higher_is_better": self.higher_is_better,
            "ranks": list(self.ranks),
            "thresholds": [
                None if r is None else key_value(self.keys[r], self.kind) for r in self.ranks
            ],
            "passes": self.passes,
        }


def _bucket_holding(buckets, rank):
    """``(keys before it, min key, max key)`` of the bucket holding 0-based ``rank`` among
    ``buckets`` (``(bucket, count, min, max)`` in any order), or None when too few keys."""
    before = 0
    for _bucket, count, low, high in sorted(buckets):
        if rank < before + count:
            return before, low, high
        before += count
    return None
