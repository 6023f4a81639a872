"""Exact order statistics of one numeric column by a sorted stream (one reducer call).

Input: JSON objects, one per line (e.g. the churn scores). Options: ``--column``, ``--n``
(how many rows the input holds, known to the driver from the job that wrote them) and
``--ranks`` (0-based ascending ranks, comma-separated). Output: ``[rank, value]`` per
rank asked for. Every value is mapped to its order-preserving 64-bit key
(:func:`mr_jobs.rfm_thresholds.value_key`, as a float) and emitted under the key ``null``
as the hex digits of its complement, so that with ``SORT_VALUES`` the one reducer call
gets the values largest first and stops at the smallest rank asked for: it holds one
value at a time and reads ``n - min(ranks)`` of them (the top fifth for the 80th
percentile). A row without a number in the column fails the task, naming the row. The
values read are counted in ``crm.output`` ``values``. Standard library only.
"""

from mrjob.protocol import BytesValueProtocol
from mrjob.step import MRStep

from mr_jobs.base import CrmJob
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol, loads
from mr_jobs.rfm_thresholds import key_value, value_key

__all__ = ["MROrderStatistics", "descending_key"]

_MASK = (1 << 64) - 1


def descending_key(value):
    """16 hex digits that sort (as text) from the largest float to the smallest."""
    return format(_MASK - value_key(float(value), "float"), "016x")


class MROrderStatistics(CrmJob):
    """Rows -> the values of ``--column`` at the ascending ``--ranks``."""

    INPUT_PROTOCOL = BytesValueProtocol
    INTERNAL_PROTOCOL = CompactJSONProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol
    SORT_VALUES = True

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg("--column", required=True, help="the numeric column")
        self.add_passthru_arg("--n", type=int, required=True, help="rows in the input")
        self.add_passthru_arg("--ranks", required=True, help="0-based ascending ranks, a,b,...")

    def steps(self):
        return [MRStep(mapper=self.mapper_emit_key, reducer=self.reducer_stream_largest_first)]

    def mapper_emit_key(self, _, raw):
        text = raw.decode("utf-8").strip()
        if not text:
            return
        row = loads(text)
        value = row.get(self.options.column)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ValueError(
                f"{self.options.column}={value!r} of {row.get('customer_id')!r} is not a number"
            )
        self.count_output(1, "values")
        yield None, descending_key(value)

    def reducer_stream_largest_first(self, _key, keys):
        n = self.options.n
        # descending position j holds ascending rank n - 1 - j
        wanted = {n - 1 - int(r): int(r) for r in self.options.ranks.split(",")}
        last = max(wanted)
        for j, key in enumerate(keys):
            if j in wanted:
                yield None, [wanted[j], key_value(_MASK - int(key, 16), "float")]
            if j >= last:
                break


if __name__ == "__main__":
    MROrderStatistics.run()
