"""Standardisation statistics, a uniform sample and a distinct-point check, in one pass over
feature files.

Input: feature files (:mod:`mr_jobs.points`), read whole by ``mapper_raw`` with numpy.
Output: three JSON objects, one per line::

    {"stats": {"count": 23570, "sum": [[m, e], ...], "sum_squares": [[m, e], ...],
               "min": [...], "max": [...]}}
    {"sample": [[priority, x1, x2, ...], ...]}
    {"distinct": [[x1, x2, ...], ...]}

``sum`` and ``sum_squares`` are exact (:mod:`mr_jobs.exact_sums`), so the mean and the
variance the driver derives do not depend on the split of the input.

The sample is the ``--sample-size`` points with the smallest priorities, a priority being
a 64-bit SipHash of the customer id keyed by ``--seed`` (``pandas.util.hash_array``): a
uniform sample without replacement, the same whatever the split, reproducible for a seed.
Ties (hash collisions) are broken by the coordinates.

``distinct`` holds up to ``--distinct-limit`` distinct points (all of them when there are
fewer), so that the driver can refuse a ``k`` larger than the number of distinct points.
"""

import heapq

import numpy as np

from mr_jobs.base import FeatureFileJob
from mr_jobs.exact_sums import ZERO, add_exact, exact_group_sums
from mr_jobs.points import read_points
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol

__all__ = ["MRFeatureStats", "sample_priorities"]


def sample_priorities(ids, seed):
    """64-bit sampling priorities of customer ids (JSON texts), keyed by ``seed``."""
    from pandas.util import hash_array

    key = f"{int(seed) % 10**16:016d}"
    return hash_array(np.asarray(ids, dtype=object), hash_key=key, categorize=False)


class MRFeatureStats(FeatureFileJob):
    """Feature files -> exact sums, min, max, a uniform sample and distinct points."""

    INTERNAL_PROTOCOL = CompactJSONProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg("--n-features", type=int, required=True)
        self.add_passthru_arg("--sample-size", type=int, default=20_000)
        self.add_passthru_arg("--seed", type=int, default=0)
        self.add_passthru_arg("--distinct-limit", type=int, default=64)

    def steps(self):
        return [self.points_step(reducer=self.reducer_merge)]

    def map_points(self, path):
        d = self.options.n_features
        ids, x = read_points(path, d, with_ids=True)
        if x.shape[0] == 0:
            return
        groups = np.broadcast_to(np.arange(d), x.shape)
        yield (
            "stats",
            {
                "count": int(x.shape[0]),
                "sum": exact_group_sums(x, groups, d),
                "sum_squares": exact_group_sums(x * x, groups, d),
                "min": x.min(axis=0).tolist(),
                "max": x.max(axis=0).tolist(),
            },
        )
        priority = sample_priorities(ids, self.options.seed)
        m = min(self.options.sample_size, x.shape[0])
        if m > 0:
            chosen = np.argpartition(priority, m - 1)[:m] if m < x.shape[0] else np.arange(m)
            yield (
                "sample",
                [[int(priority[i]), *x[i].tolist()] for i in chosen.tolist()],
            )
        yield "distinct", _distinct_rows(x, self.options.distinct_limit)

    def reducer_merge(self, key, values):
        if key == "stats":
            yield None, {"stats": _merge_stats(values)}
        elif key == "sample":
            merged = heapq.nsmallest(
                self.options.sample_size, (row for part in values for row in part)
            )
            yield None, {"sample": merged}
        else:
            limit = self.options.distinct_limit
            seen = set()
            for part in values:
                seen.update(tuple(row) for row in part)
            yield None, {"distinct": [list(row) for row in sorted(seen)[:limit]]}


def _distinct_rows(x, limit):
    """Up to ``limit`` distinct rows of ``x`` (all when fewer), looking at as few as it can."""
    size = max(4 * limit, 1024)
    while True:
        head = x[:size]
        rows = np.unique(head, axis=0)
        if rows.shape[0] >= limit or size >= x.shape[0]:
            return rows[:limit].tolist()
        size *= 4


def _merge_stats(parts):
    merged = None
    for part in parts:
        if merged is None:
            merged = {
                "count": part["count"],
                "sum": [tuple(p) for p in part["sum"]],
                "sum_squares": [tuple(p) for p in part["sum_squares"]],
                "min": part["min"],
                "max": part["max"],
            }
            continue
        merged["count"] += part["count"]
        for name in ("sum", "sum_squares"):
            merged[name] = [add_exact(a, b) for a, b in zip(merged[name], part[name], strict=True)]
        merged["min"] = [min(a, b) for a, b in zip(merged["min"], part["min"], strict=True)]
        merged["max"] = [max(a, b) for a, b in zip(merged["max"], part["max"], strict=True)]
    if merged is None:
        return {"count": 0, "sum": [], "sum_squares": [], "min": [], "max": []}
    merged["sum"] = [list(p) if p != ZERO else [0, 0] for p in merged["sum"]]
    merged["sum_squares"] = [list(p) if p != ZERO else [0, 0] for p in merged["sum_squares"]]
    return merged


if __name__ == "__main__":
    MRFeatureStats.run()
