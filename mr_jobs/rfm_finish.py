"""Fill the as-of fields of RFM rows: a map-only pass over customers, not lines.

Input: the rows of :class:`mr_jobs.rfm.MRCustomerRFM` run without ``--as-of`` (``as_of``,
``recency_days``, ``tenure_days`` and ``T`` are ``null``), one JSON object per line.
Output: the same rows, in the same order, with those four fields set for ``--as-of``
(:func:`mr_jobs.rfm.apply_as_of`), written as the RFM job writes them
(:func:`mr_jobs.rfm.encode_row`). The RFM stage (:mod:`models.rfm_stage`) runs it with the
latest purchase date the RFM job counted, so that the default as-of date needs neither a
second pass over the lines nor any customer row in the driver.

A line that is not an RFM row is a bug upstream, not bad input, and fails the task with
its first characters named. Rows written are counted in ``crm.output`` ``rows``.
"""

from mrjob.protocol import BytesValueProtocol

from mr_jobs.base import CrmJob
from mr_jobs.protocols import loads
from mr_jobs.records import parse_as_of
from mr_jobs.rfm import RFMRowProtocol, apply_as_of

__all__ = ["MRFinishRFMRows"]


class MRFinishRFMRows(CrmJob):
    """RFM rows without an as-of date -> the same rows as of ``--as-of``."""

    INPUT_PROTOCOL = BytesValueProtocol
    OUTPUT_PROTOCOL = RFMRowProtocol

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg("--as-of", required=True, help="YYYY-MM-DD: the as-of date")

    def mapper_init(self):
        self._as_of_ordinal = parse_as_of(self.options.as_of)
        self._rows = 0

    def mapper(self, _, raw):
        text = raw.decode("utf-8").strip()
        if not text:
            return
        try:
            row = loads(text)
        except ValueError:
            raise ValueError(f"not an RFM row: {text[:80]!r}") from None
        self._rows += 1
        yield None, apply_as_of(row, self._as_of_ordinal)

    def mapper_final(self):
        self.count_output(self._rows)


if __name__ == "__main__":
    MRFinishRFMRows.run()
