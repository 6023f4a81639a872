"""Feature lines for K-Means from the RFM job's rows: a map-only pass.

Input: one JSON object per line and customer, as :mod:`mr_jobs.rfm` writes them (the RFM
stage's ``part-*`` files; the RFM segments stage's rows carry the same columns). Output:
one feature line per accepted customer (see :mod:`mr_jobs.points`)::

    "C000001"\t120\t1.0986122886681098\t4.406719247264253

with the features of ``--features`` (default ``recency,frequency,monetary``; formulas and
transforms in :mod:`mr_jobs.features`), transformed but not standardised.

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
from mr_jobs.points import format_point

__all__ = ["MRKMeansFeatures"]

_decode = json.JSONDecoder().decode
_encode_str = json.encoder.encode_basestring


class MRKMeansFeatures(CrmJob):
    """RFM rows -> feature lines (map-only), with line accounting."""

    INPUT_PROTOCOL = BytesValueProtocol
    OUTPUT_PROTOCOL = RawValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg(
            "--features",
            default=",".join(DEFAULT_FEATURES),
            help="comma-separated feature names (see mr_jobs.features)",
        )

    def load_args(self, args):
        super().load_args(args)
        try:
            self.features = parse_features(self.options.features)
        except ValueError as e:
            self.arg_parser.error(str(e))

    def steps(self):
        return [
            MRStep(
                mapper_init=self.mapper_init_counts,
                mapper=self.mapper_features,
                mapper_final=self.mapper_final_report,
            )
        ]

    def mapper_init_counts(self):
        self.lines_read = 0
        self.lines_rejected = {}

    def _reject(self, reason):
        self.lines_rejected[reason] = self.lines_rejected.get(reason, 0) + 1

    def mapper_features(self, _, raw):
        self.lines_read += 1
        if not raw.strip():
            self._reject("blank")
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._reject("undecodable")
            return
        try:
            row = _decode(text)
        except ValueError:
            self._reject("not_json")
            return
        if not isinstance(row, dict):
            self._reject("not_an_object")
            return
        customer = row.get("customer_id")
        if not isinstance(customer, str) or not customer.strip():
            self._reject("missing_customer")
            return
        try:
            values = feature_values(row, self.features)
        except FeatureError as e:
            self._reject(e.reason)
            return
        yield None, format_point(_encode_str(customer), values)

    def mapper_final_report(self):
        self.report_line_counters()
        return
        yield


if __name__ == "__main__":
    MRKMeansFeatures.run()
