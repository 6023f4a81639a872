"""A seeded, uniform sample of customer rows by a hash of the customer id (map-only).

Input: one JSON object per line with a ``customer_id``: the churn training rows of
:class:`mr_jobs.churn_features.MRChurnFeatures`, or the CLV stage's calibration rows
(:func:`models.churn.keyed_sample` runs it for both). Options: ``--seed`` and
``--threshold`` (an integer in ``0 .. 2**64``).
Output: the rows whose :func:`sample_key` is below the threshold, each with its key added
as ``sample_key``, in the input's order. The driver (:mod:`models.churn_stage`) sets the
threshold a little above ``max_train / population`` of the key space and keeps the
``max_train`` rows with the smallest keys: a uniform sample without replacement, the same
for the same seed and ids whatever the runner or the order of the lines. Rows kept are
counted in ``crm.output`` ``rows``. Standard library only.
"""

import hashlib

from mrjob.protocol import BytesValueProtocol

from mr_jobs.base import CrmJob
from mr_jobs.protocols import CompactJSONValueProtocol, loads

__all__ = ["KEY_SPACE", "MRChurnSample", "sample_key"]

#: Keys are in ``0 .. KEY_SPACE - 1``.
KEY_SPACE = 1 << 64


def sample_key(customer_id, seed):
    """The 64-bit sampling key of a customer: BLAKE2b (8 bytes) of the UTF-8 id, keyed
    by the decimal seed.

    Examples
    --------
    >>> sample_key("C1", 0) == sample_key("C1", 0) != sample_key("C1", 1)
    True
    """
    digest = hashlib.blake2b(
        customer_id.encode("utf-8", "surrogatepass"), digest_size=8, key=str(seed).encode()
    )
    return int.from_bytes(digest.digest(), "big")


class MRChurnSample(CrmJob):
    """Training rows -> the rows whose key is below ``--threshold``."""

    INPUT_PROTOCOL = BytesValueProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg("--seed", type=int, required=True, help="seed of the keys")
        self.add_passthru_arg(
            "--threshold", type=int, required=True, help="keep keys below it (0 .. 2**64)"
        )

    def mapper_init(self):
        self._rows = 0

    def mapper(self, _, raw):
        text = raw.decode("utf-8").strip()
        if not text:
            return
        row = loads(text)
        key = sample_key(row["customer_id"], self.options.seed)
        if key < self.options.threshold:
            self._rows += 1
            row["sample_key"] = key
            yield None, row

    def mapper_final(self):
        self.count_output(self._rows)


if __name__ == "__main__":
    MRChurnSample.run()
