"""The published rows of the segments stage: RFM rows labelled with their K-Means segment.

Input: the RFM rows the features were computed from (:mod:`mr_jobs.kmeans_features`'s
input: one JSON object per line and customer) and ``--model FILE`` (shipped with the job,
see :func:`write_model`)::

    {"features": ["recency", ...], "mean": [...], "scale": [...],
     "centroids": [[...], ...], "names": ["champions", ...]}

The mapper computes each row's features with :func:`mr_jobs.features.feature_values` (the
features job's code, so the same floats), standardises and assigns them in blocks with
:func:`mr_jobs.points.standardise` and :func:`mr_jobs.points.assign`, the functions the
Lloyd iterations and :class:`mr_jobs.kmeans_labels.MRKMeansLabels` use: the segment and
the distance are those the fit measured. A row the features job rejects is skipped here
(not counted again: the features job did the line accounting).

The rows go through a shuffle so that each part comes out sorted by ``customer_id`` and
no customer is written twice. The key is the id's UTF-8 bytes in hex, whose byte order
is the order of the ids as Python compares them (a JSON-encoded id would not sort so: its
closing quote and escapes get in the way). A reducer call that gets more than one row
for an id counts it under ``crm.kmeans_rows`` ``duplicate_customers``, and the first such
id of the task, cut at 40 characters, as ``first_duplicate:<id>`` (:func:`duplicates`).
Output, compact JSON, one line per customer, in this key order::

    {"customer_id":"C000001","segment":4,"segment_name":"lost","distance":0.8119,
     "recency_days":729,"orders":1,"total_value":18.98,"rfm_segment":"lost"}

``recency_days``, ``orders`` and ``total_value`` are the input row's values (null when it
lacks one); ``rfm_segment`` is the input row's ``segment``, only when it has one. Counters:
``crm.output`` ``rows`` (rows written) and ``with_rfm_segment``.
"""

import json

import numpy as np
from mrjob.protocol import BytesValueProtocol
from mrjob.step import MRStep

from mr_jobs.base import CrmJob
from mr_jobs.features import FeatureError, feature_values, parse_features
from mr_jobs.kmeans import read_centroids
from mr_jobs.points import assign, standardise
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol

__all__ = [
    "COUNTER_GROUP_ROWS",
    "MRKMeansSegmentRows",
    "PROFILE_COLUMNS",
    "duplicates",
    "row_columns",
    "write_model",
]

COUNTER_GROUP_ROWS = "crm.kmeans_rows"

#: The RFM columns each published row carries, after the label.
PROFILE_COLUMNS = ("recency_days", "orders", "total_value")

# rows standardised and assigned at a time (a task holds at most this many)
_BLOCK = 4096
# Hadoop truncates counter names beyond 64 characters: the id in one is cut at 40
_ID_IN_COUNTER = 40

_decode = json.JSONDecoder().decode


def row_columns(with_rfm_segment):
    """The columns of a published row, in order."""
    columns = ["customer_id", "segment", "segment_name", "distance", *PROFILE_COLUMNS]
    return [*columns, "rfm_segment"] if with_rfm_segment else columns


def write_model(path, features, mean, scale, centroids, names):
    """Write the ``--model`` file of :class:`MRKMeansSegmentRows` (floats exactly, as JSON
    writes their ``repr``)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(
            {
                "features": list(features),
                "mean": [float(v) for v in mean],
                "scale": [float(v) for v in scale],
                "centroids": [[float(v) for v in row] for row in centroids],
                "names": list(names),
            },
            f,
        )


def duplicates(counters):
    """``(count, first id or None)`` of the customer ids that had more than one row."""
    count, first = 0, None
    for step in counters:
        group = step.get(COUNTER_GROUP_ROWS, {})
        count += group.get("duplicate_customers", 0)
        for name in group:
            if name.startswith("first_duplicate:") and first is None:
                first = name.partition(":")[2]
    return count, first


def _usable(raw, features):
    """``(row, feature values)`` of an input line the features job accepts, else None.

    The same checks as :meth:`mr_jobs.kmeans_features.MRKMeansFeatures.mapper_features`,
    without the counting; the driver checks that both jobs kept the same number of rows.
    """
    if not raw.strip():
        return None
    try:
        row = _decode(raw.decode("utf-8"))  # as the features job decodes it
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(row, dict):
        return None
    customer = row.get("customer_id")
    if not isinstance(customer, str) or not customer.strip():
        return None
    try:
        return row, feature_values(row, features)
    except FeatureError:
        return None


class MRKMeansSegmentRows(CrmJob):
    """RFM rows -> one labelled row per customer, sorted by ``customer_id`` in each part."""

    INPUT_PROTOCOL = BytesValueProtocol
    INTERNAL_PROTOCOL = CompactJSONProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_file_arg("--model", required=True, help="JSON model file (see write_model)")

    def steps(self):
        return [
            MRStep(
                mapper_init=self.mapper_init_model,
                mapper=self.mapper_label_rows,
                mapper_final=self.mapper_final_flush,
                reducer_init=self.reducer_init_counts,
                reducer=self.reducer_write_row,
                reducer_final=self.reducer_final_counts,
            )
        ]

    def mapper_init_model(self):
        self.mean, self.scale, self.centroids, _ = read_centroids(self.options.model)
        with open(self.options.model, encoding="utf-8") as f:
            spec = json.load(f)
        self.features = parse_features(spec["features"])
        self.names = spec["names"]
        self._rows, self._values = [], []

    def mapper_label_rows(self, _, raw):
        found = _usable(raw, self.features)
        if found is None:
            return
        self._rows.append(found[0])
        self._values.append(found[1])
        if len(self._rows) >= _BLOCK:
            yield from self._flush()

    def mapper_final_flush(self):
        yield from self._flush()

    def _flush(self):
        """Label the block of rows held by the task and emit them keyed by customer."""
        if not self._rows:
            return
        x = np.array(self._values, dtype=np.float64)
        labels, d2 = assign(standardise(x, self.mean, self.scale), self.centroids)
        for row, label, dist in zip(self._rows, labels.tolist(), np.sqrt(d2).tolist(), strict=True):
            yield _key(row["customer_id"]), self._labelled(row, label, dist)
        self._rows, self._values = [], []

    def _labelled(self, row, label, dist):
        out = {
            "customer_id": row["customer_id"],
            "segment": label,
            "segment_name": self.names[label],
            "distance": dist,
        }
        for column in PROFILE_COLUMNS:
            out[column] = row.get(column)
        if row.get("segment") is not None:
            out["rfm_segment"] = row["segment"]
        return out

    def reducer_init_counts(self):
        self._written = self._with_rfm_segment = 0
        self._reported_duplicate = False

    def reducer_write_row(self, _key, rows):
        first = None
        for row in rows:
            if first is None:
                first = row
                continue
            self._duplicate(first["customer_id"])
            return
        self._written += 1
        self._with_rfm_segment += "rfm_segment" in first
        yield None, first

    def _duplicate(self, customer):
        if not self._reported_duplicate:
            self._reported_duplicate = True
            name = f"first_duplicate:{customer[:_ID_IN_COUNTER]}"
            self.increment_counter(COUNTER_GROUP_ROWS, name, 1)
        self.increment_counter(COUNTER_GROUP_ROWS, "duplicate_customers", 1)

    def reducer_final_counts(self):
        self.count_output(self._written)
        self.count_output(self._with_rfm_segment, name="with_rfm_segment")


def _key(customer):
    """The shuffle key of a customer id: its UTF-8 bytes in hex (sorts as the ids do)."""
    return customer.encode("utf-8", "surrogatepass").hex()


if __name__ == "__main__":
    MRKMeansSegmentRows.run()
