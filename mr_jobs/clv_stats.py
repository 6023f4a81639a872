"""The compressed statistics of BG/NBD: customers per distinct ``(x, t_x, T, holdout)``.

Input: RFM rows of period ``D`` (:mod:`mr_jobs.rfm`), or the calibration rows of
:class:`mr_jobs.churn_features.MRChurnFeatures` (which add ``purchase_days_in_horizon``,
the holdout's purchase days), one JSON object per line. Output: one JSON list per
distinct key, ``[x, t_x, T, holdout, customers]`` with ``x = frequency``, ``t_x =
recency`` and ``T`` the lifetimes columns in days and ``holdout`` the row's
``purchase_days_in_horizon`` (0 when absent): what :func:`models.clv.fit_bgnbd` fits on
and what the holdout table of :mod:`models.clv_stage` is summed from. The number of
distinct keys is bounded by the log's span in days (``x, t_x <= T <= days``), not by the
customers. A row whose ``period`` is not ``D`` fails the task, naming it.

In-mapper combining: a mapper holds at most ``--combine-max`` keys before it emits its
counts early. Counters: ``crm.clv`` ``rows`` (rows read), ``crm.output`` ``rows`` (keys
written). Standard library only.
"""

from mrjob.protocol import BytesValueProtocol
from mrjob.step import MRStep

from mr_jobs.base import CrmJob
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol, loads

__all__ = ["COUNTER_GROUP_CLV", "MRCLVStats", "key_of_row"]

#: Counter group of the CLV jobs' facts.
COUNTER_GROUP_CLV = "crm.clv"


def key_of_row(row):
    """``(x, t_x, T, holdout)`` of one row (checked: period ``D``, ``0 <= t_x <= T``).

    Examples
    --------
    >>> key_of_row({"customer_id": "A", "period": "D", "frequency": 2, "recency": 30, "T": 90})
    (2, 30, 90, 0)
    """
    if row.get("period") != "D":
        raise ValueError(
            f"customer_id={row.get('customer_id')!r} has period={row.get('period')!r}: the "
            "CLV models need the lifetimes columns in days (period D)"
        )
    key = (row["frequency"], row["recency"], row["T"], row.get("purchase_days_in_horizon", 0))
    if not 0 <= key[1] <= key[2] or key[0] < 0:
        raise ValueError(
            f"customer_id={row.get('customer_id')!r} has frequency={key[0]!r}, "
            f"recency={key[1]!r}, T={key[2]!r}: need frequency >= 0 and 0 <= recency <= T"
        )
    return key


class MRCLVStats(CrmJob):
    """Rows -> customers per distinct ``(x, t_x, T, holdout)``."""

    INPUT_PROTOCOL = BytesValueProtocol
    INTERNAL_PROTOCOL = CompactJSONProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg(
            "--combine-max", type=int, default=100_000, help="keys a mapper holds at most"
        )

    def steps(self):
        return [
            MRStep(
                mapper_init=self.mapper_init_counts,
                mapper=self.mapper_count_row,
                mapper_final=self.mapper_final_emit_counts,
                combiner=self.reducer_sum_counts,
                reducer_init=self.reducer_init_keys,
                reducer=self.reducer_write_key,
                reducer_final=self.reducer_final_count_keys,
            )
        ]

    def mapper_init_counts(self):
        self._counts = {}
        self._rows = 0

    def mapper_count_row(self, _, raw):
        text = raw.decode("utf-8").strip()
        if not text:
            return
        key = key_of_row(loads(text))
        self._rows += 1
        self._counts[key] = self._counts.get(key, 0) + 1
        if len(self._counts) >= self.options.combine_max:
            yield from self._emit()

    def mapper_final_emit_counts(self):
        self.increment_counter(COUNTER_GROUP_CLV, "rows", self._rows)
        yield from self._emit()

    def _emit(self):
        counts, self._counts = self._counts, {}
        for key, count in counts.items():
            # a string key: Spark's combiner hashes the decoded key (a list cannot be)
            yield ",".join(map(str, key)), count

    def reducer_sum_counts(self, key, counts):
        yield key, sum(counts)

    def reducer_init_keys(self):
        self._keys = 0

    def reducer_write_key(self, key, counts):
        self._keys += 1
        yield None, [*map(int, key.split(",")), sum(counts)]

    def reducer_final_count_keys(self):
        self.count_output(self._keys)


if __name__ == "__main__":
    MRCLVStats.run()
