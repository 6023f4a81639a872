"""Per-segment totals of the labelled rows: what the segment profiles and the overlap need.

Input: the segments stage's published rows (:mod:`mr_jobs.kmeans_rows`), one JSON object
per line. Each mapper combines in memory (one record per segment and per (segment,
``rfm_segment``) pair); one reducer adds them. Output, one JSON object per line::

    {"segment":0,"customers":655,"recency_days":[n,[m,e]],"orders":[n,[m,e]],
     "total_value_micros":[n,micros],"distance":[n,[m,e]]}
    {"segment":0,"rfm_segment":"champions","customers":475}

Every sum is exact, so the profiles do not depend on how the rows were split:
``total_value`` is summed in integer millionths (the RFM job's sums have at most six
decimals), the other columns as exact float sums ``[mantissa, exponent]``
(:mod:`mr_jobs.exact_sums`). Each sum comes with ``n``, the rows where the column is a
number (a missing value is left out of the mean, as pandas does). Rows whose
``rfm_segment`` is missing or null are not in the overlap. Nothing here is non-decomposable:
the profiles are counts, sums and means.
"""

import math

from mrjob.protocol import BytesValueProtocol
from mrjob.step import MRStep

from mr_jobs.base import CrmJob
from mr_jobs.exact_sums import ZERO, add_exact
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol, loads

__all__ = ["MRSegmentProfile", "SUMMED"]

#: The columns summed per segment, with how (``"exact"`` float sums or ``"micros"``).
SUMMED = {
    "recency_days": "exact",
    "orders": "exact",
    "total_value": "micros",
    "distance": "exact",
}

_MICRO = 1_000_000
_MANTISSA_BITS = 53
_KEY = "profile"  # one reducer: a few small records per map task


def _exact(value):
    """A finite number as an exact ``(mantissa, exponent)`` pair."""
    if isinstance(value, int):
        return (value, 0)
    mantissa, exponent = math.frexp(value)
    return (int(mantissa * (1 << _MANTISSA_BITS)), exponent - _MANTISSA_BITS)


def _number(value):
    return type(value) in (int, float) and math.isfinite(value)


def _empty_totals():
    totals = {"customers": 0}
    for column, how in SUMMED.items():
        totals[column] = [0, 0 if how == "micros" else ZERO]
    return totals


def _add(totals, other):
    """Add the totals ``other`` into ``totals`` (both in the output's layout)."""
    totals["customers"] += other["customers"]
    for column, how in SUMMED.items():
        n, total = other[column]
        totals[column][0] += n
        if how == "micros":
            totals[column][1] += total
        else:
            totals[column][1] = add_exact(totals[column][1], total)


class MRSegmentProfile(CrmJob):
    """Labelled rows -> exact totals per segment and customers per (segment, rfm_segment)."""

    INPUT_PROTOCOL = BytesValueProtocol
    INTERNAL_PROTOCOL = CompactJSONProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol

    def steps(self):
        return [
            MRStep(
                mapper_init=self.mapper_init_totals,
                mapper=self.mapper_add_row,
                mapper_final=self.mapper_final_emit,
                reducer=self.reducer_add_totals,
            )
        ]

    def mapper_init_totals(self):
        self._segments = {}
        self._overlap = {}

    def mapper_add_row(self, _, raw):
        text = raw.decode("utf-8").strip()
        if not text:
            return
        row = loads(text)
        segment = row["segment"]
        totals = self._segments.get(segment)
        if totals is None:
            totals = self._segments[segment] = _empty_totals()
        totals["customers"] += 1
        for column, how in SUMMED.items():
            value = row.get(column)
            if not _number(value):
                continue
            pair = totals[column]
            pair[0] += 1
            if how == "micros":
                pair[1] += round(value * _MICRO)
            else:
                pair[1] = add_exact(pair[1], _exact(value))
        rfm = row.get("rfm_segment")
        if rfm is not None:
            key = (segment, rfm)
            self._overlap[key] = self._overlap.get(key, 0) + 1
        return
        yield

    def mapper_final_emit(self):
        for segment, totals in sorted(self._segments.items()):
            yield _KEY, {"segment": segment, **totals}
        for (segment, rfm), count in sorted(self._overlap.items()):
            yield _KEY, {"segment": segment, "rfm_segment": rfm, "customers": count}

    def reducer_add_totals(self, _key, records):
        segments, overlap = {}, {}
        for record in records:
            segment = record["segment"]
            if "rfm_segment" in record:
                key = (segment, record["rfm_segment"])
                overlap[key] = overlap.get(key, 0) + record["customers"]
                continue
            totals = segments.get(segment)
            if totals is None:
                totals = segments[segment] = _empty_totals()
            _add(totals, record)
        for segment, totals in sorted(segments.items()):
            yield None, {"segment": segment, **totals}
        for (segment, rfm), count in sorted(overlap.items()):
            yield None, {"segment": segment, "rfm_segment": rfm, "customers": count}


if __name__ == "__main__":
    MRSegmentProfile.run()
