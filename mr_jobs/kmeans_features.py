"""Feature lines for K-Means from the RFM job's rows: a map-only pass.

Input: one JSON object per line and customer, as :mod:`mr_jobs.rfm` writes them (the RFM
stage's ``part-*`` files; the RFM segments stage's rows carry the same columns). Output:
one feature line per accepted customer (see :mod:`mr_jobs.points`): the float64 bit
patterns of the features in hex, a tab and the customer id as JSON::

    405e0000000000003ff193ea7aad030a4011a694d1a05e2c\t"C000001"

with the features of ``--features`` (default ``recency,frequency,monetary``; formulas and
transforms in :mod:`mr_jobs.features`), transformed but not standardised.

Each map task reads a whole input file (``mapper_raw``), so there is one feature file per
input file: the RFM stage writes at most a million customers per part, and the Lloyd
iterations then run one map task per part. (Split by the runner, the same input made the
local runner add tiny remainder splits, each a map task of its own in every iteration.)
With ``--line-input`` (the Spark runner, which has no ``mapper_raw``) lines are read one
by one.

Rejected, and counted under ``crm.rejected``: a blank line (``blank``), bytes that are not
UTF-8 (``undecodable``), text that is not JSON (``not_json``), JSON that is not an object
(``not_an_object``), an object without a non-empty string ``customer_id``
(``missing_customer``), and the feature reasons of :mod:`mr_jobs.features`
(``missing_feature``, ``not_a_number``, ``not_finite``, ``negative_value``).
``crm.lines`` counts read = accepted + rejected.
"""

import json

from mrjob.protocol import BytesValueProtocol, RawValueProtocol
from mrjob.step import MRStep

from mr_jobs.base import CrmJob
from mr_jobs.features import DEFAULT_FEATURES, FeatureError, feature_values, parse_features
from mr_jobs.points import format_point, local_path

__all__ = ["MRKMeansFeatures"]

_decode = json.JSONDecoder().decode
_encode_str = json.encoder.encode_basestring


class MRKMeansFeatures(CrmJob):
    """RFM rows -> feature lines (map-only), with line accounting."""

    INPUT_PROTOCOL = BytesValueProtocol
    OUTPUT_PROTOCOL = RawValueProtocol

    def load_args(self, args):
        super().load_args(args)
        try:
            self.features = parse_features(self.options.features)
        except ValueError as e:
            self.arg_parser.error(str(e))

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg(
            "--features",
            default=",".join(DEFAULT_FEATURES),
            help="comma-separated feature names (see mr_jobs.features)",
        )
        self.add_passthru_arg(
            "--line-input",
            action="store_true",
            help="read input lines one by one (for runners without mapper_raw, e.g. Spark)",
        )

    def steps(self):
        if self.options.line_input:
            read = {"mapper": self.mapper_features}
        else:
            read = {"mapper_raw": self.mapper_raw_features}
        return [
            MRStep(
                mapper_init=self.mapper_init_counts,
                mapper_final=self.mapper_final_report,
                **read,
            )
        ]

    def mapper_raw_features(self, path, _uri):
        """A whole input file per task (see the module docstring), line by line."""
        with _open_input(path) as f:
            for raw in f:
                yield from self.mapper_features(None, raw.rstrip(b"\r\n"))

    def mapper_init_counts(self):
        self.lines_read = 0
        self.lines_rejected = {}

    def mapper_features(self, _, raw):
        self.lines_read += 1
        if not raw.strip():
            self.reject_line("blank")
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.reject_line("undecodable")
            return
        try:
            row = _decode(text)
        except ValueError:
            self.reject_line("not_json")
            return
        if not isinstance(row, dict):
            self.reject_line("not_an_object")
            return
        customer = row.get("customer_id")
        if not isinstance(customer, str) or not customer.strip():
            self.reject_line("missing_customer")
            return
        try:
            values = feature_values(row, self.features)
        except FeatureError as e:
            self.reject_line(e.reason)
            return
        yield None, format_point(_encode_str(customer), values)

    def mapper_final_report(self):
        self.report_line_counters()
        return
        yield


def _open_input(path):
    """Open an input file, decompressing ``.gz`` and ``.bz2`` as Hadoop would."""
    path = local_path(path)
    if path.endswith(".gz"):
        import gzip

        return gzip.open(path, "rb")
    if path.endswith(".bz2"):
        import bz2

        return bz2.open(path, "rb")
    return open(path, "rb")


if __name__ == "__main__":
    MRKMeansFeatures.run()
