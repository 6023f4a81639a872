"""The churn early-warning list: a top-N by value at risk of the high-risk, high-value rows.

Input: the churn scores (:mod:`mr_jobs.churn_scores`), one JSON object per line. Options:
``--threshold`` (a row is high-value when ``value >= threshold``), ``--tier`` (default
``high``) and ``--limit`` (keep the first N; default all). Output: the selected rows
ranked by ``value_at_risk`` (descending) then ``customer_id`` (ascending, by code point),
each with ``rank`` (from 1) first and ``value_threshold`` last, in rank order.

Every selected row goes to the one reducer call of the key ``null`` with a sort key:
the hex digits of the complement of the value at risk's order-preserving key, then the
hex digits of the UTF-8 id (hex text sorts as the bytes do, and UTF-8 bytes as the code
points). With ``SORT_VALUES`` the reducer gets the rows in rank order and holds one at a
time. With ``--limit`` each mapper keeps only its ``limit`` best rows (in-mapper top-N,
bounded by ``2 * limit`` rows). Rows written are counted in ``crm.output`` ``rows``.
Standard library only.
"""

from mrjob.protocol import BytesValueProtocol
from mrjob.step import MRStep

from mr_jobs.base import CrmJob
from mr_jobs.order_statistics import descending_key
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol, loads

__all__ = ["MRTopAtRisk", "rank_key"]


def rank_key(row):
    """The text that sorts rows by value at risk (descending), then id (ascending)."""
    return descending_key(row["value_at_risk"]) + row["customer_id"].encode("utf-8").hex()


class MRTopAtRisk(CrmJob):
    """Scored rows -> the ranked early-warning rows."""

    INPUT_PROTOCOL = BytesValueProtocol
    INTERNAL_PROTOCOL = CompactJSONProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol
    SORT_VALUES = True

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg("--threshold", type=float, required=True, help="minimum value")
        self.add_passthru_arg("--tier", default="high", help="risk tier kept")
        self.add_passthru_arg("--limit", type=int, default=None, help="rows kept")

    def steps(self):
        return [
            MRStep(
                mapper_init=self.mapper_init_best,
                mapper=self.mapper_select_row,
                mapper_final=self.mapper_final_emit_best,
                reducer=self.reducer_rank_rows,
            )
        ]

    def mapper_init_best(self):
        self._best = []

    def mapper_select_row(self, _, raw):
        text = raw.decode("utf-8").strip()
        if not text:
            return
        row = loads(text)
        if row["risk_tier"] != self.options.tier or not row["value"] >= self.options.threshold:
            return
        limit = self.options.limit
        if limit is None:
            yield None, [rank_key(row), row]
            return
        self._best.append([rank_key(row), row])
        if len(self._best) >= 2 * limit:
            self._trim()

    def _trim(self):
        self._best.sort(key=lambda pair: pair[0])
        del self._best[self.options.limit :]

    def mapper_final_emit_best(self):
        if self.options.limit is not None:
            self._trim()
            for pair in self._best:
                yield None, pair

    def reducer_rank_rows(self, _key, pairs):
        limit = self.options.limit
        rank = 0
        for _sort_key, row in pairs:
            rank += 1
            yield None, {"rank": rank, **row, "value_threshold": self.options.threshold}
            if limit is not None and rank >= limit:
                break
        self.count_output(rank)


if __name__ == "__main__":
    MRTopAtRisk.run()
