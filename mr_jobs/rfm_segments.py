"""Score RFM rows and name their segments: a map-only pass, totals per segment in counters.

Input: the RFM stage's rows (:mod:`mr_jobs.rfm`), one JSON object per line, and
``--thresholds FILE`` (JSON, shipped with the job): per dimension ``recency_days``,
``orders``, ``total_value``, the four thresholds of scores 2..5 that
:func:`models.rfm_thresholds.exact_thresholds` found over all customers. Output: each row
in the input order with ``r_score``, ``f_score``, ``m_score``, ``rfm_cell``, ``rfm_sum``,
``value_tier``, ``single_purchase`` and ``segment`` appended (replacing any of those
names), compact JSON. The scores equal :func:`models.rfm_scores.score_customers` on the
whole table; the rules are :mod:`mr_jobs.segment_rules`.

Counters (the segment summary, reduced by the framework, exact):

- ``crm.segments`` ``<segment>.customers``, ``<segment>.recency_days``,
  ``<segment>.orders`` (sums of integers) and ``<segment>.total_value_micros`` (the sum
  of ``total_value`` in integer millionths, the precision of the RFM job's sums);
- ``crm.output`` ``rows``;
- ``crm.rfm_invalid`` ``<column>`` for rows that cannot be scored (a missing or
  non-numeric value, a negative ``recency_days``, ``orders`` below 1): the driver refuses
  the result, naming the column and the count, as ``score_customers`` would.
"""

import json

from mrjob.protocol import BytesValueProtocol

from mr_jobs.base import CrmJob
from mr_jobs.protocols import CompactJSONValueProtocol, loads
from mr_jobs.segment_rules import SCORE_COLUMNS, score, segment_of, value_tier

__all__ = [
    "COUNTER_GROUP_INVALID",
    "COUNTER_GROUP_SEGMENTS",
    "MRScoreRFMRows",
    "SCORE_COLUMNS",
    "segment_totals",
]

COUNTER_GROUP_SEGMENTS = "crm.segments"
COUNTER_GROUP_INVALID = "crm.rfm_invalid"


_STATS = ("customers", "recency_days", "orders", "total_value_micros")
_MICRO = 1_000_000


def segment_totals(counters):
    """Per segment ``{"customers", "recency_days", "orders", "total_value_micros"}`` sums,
    and the invalid rows per column, from the counters of a run.

    Returns
    -------
    (dict, dict)
    """
    found, invalid = {}, {}
    for step in counters:
        for name, count in step.get(COUNTER_GROUP_SEGMENTS, {}).items():
            segment, _, stat = name.rpartition(".")
            found.setdefault(segment, dict.fromkeys(_STATS, 0))[stat] += count
        for column, count in step.get(COUNTER_GROUP_INVALID, {}).items():
            invalid[column] = invalid.get(column, 0) + count
    return found, invalid


def _number(row, column):
    value = row.get(column)
    if type(value) in (int, float) and value == value:  # not bool, not NaN
        return value
    raise KeyError(column)


class MRScoreRFMRows(CrmJob):
    """RFM rows -> the same rows with scores, cell, tier and segment."""

    INPUT_PROTOCOL = BytesValueProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_file_arg("--thresholds", required=True, help="JSON thresholds file")

    def mapper_init(self):
        with open(self.options.thresholds, encoding="utf-8") as f:
            found = json.load(f)
        self._recency = found["recency_days"]["thresholds"]
        self._orders = found["orders"]["thresholds"]
        self._value = found["total_value"]["thresholds"]
        self._totals = {}
        self._invalid = {}
        self._rows = 0

    def mapper(self, _, raw):
        text = raw.decode("utf-8").strip()
        if not text:
            return
        row = loads(text)
        try:
            recency = _number(row, "recency_days")
            orders = _number(row, "orders")
            value = _number(row, "total_value")
            if recency < 0:
                raise KeyError("recency_days")
            if orders < 1:
                raise KeyError("orders")
        except KeyError as bad:
            column = bad.args[0]
            self._invalid[column] = self._invalid.get(column, 0) + 1
            return
        yield None, self._scored(row, recency, orders, value)

    def _scored(self, row, recency, orders, value):
        r = score(recency, self._recency, False)
        f = score(orders, self._orders, True)
        m = score(value, self._value, True)
        single = orders == 1
        segment = segment_of(r, f, m, single)
        for column in SCORE_COLUMNS:
            row.pop(column, None)
        row.update(
            r_score=r,
            f_score=f,
            m_score=m,
            rfm_cell=f"{r}{f}{m}",
            rfm_sum=r + f + m,
            value_tier=value_tier(m),
            single_purchase=single,
            segment=segment,
        )
        totals = self._totals.get(segment)
        if totals is None:
            totals = self._totals[segment] = [0, 0, 0, 0]
        totals[0] += 1
        totals[1] += recency
        totals[2] += orders
        totals[3] += round(value * _MICRO)
        self._rows += 1
        return row

    def mapper_final(self):
        for segment, totals in sorted(self._totals.items()):
            for stat, count in zip(_STATS, totals, strict=True):
                self.increment_counter(COUNTER_GROUP_SEGMENTS, f"{segment}.{stat}", count)
        for column, count in sorted(self._invalid.items()):
            self.increment_counter(COUNTER_GROUP_INVALID, column, count)
        self.count_output(self._rows)


if __name__ == "__main__":
    MRScoreRFMRows.run()
