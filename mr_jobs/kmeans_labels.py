"""Label every customer with the nearest final centroid: a map-only pass.

Input: feature files (:mod:`mr_jobs.points`) read whole by ``mapper_raw``, and
``--centroids FILE`` as for :class:`mr_jobs.kmeans.MRKMeansIteration`. Output: one JSON
object per customer, in the order of the feature files::

    {"customer_id":"C000001","segment":2,"distance":0.8431}

``segment`` is the index of the nearest centroid (ties to the lowest index) and
``distance`` the Euclidean distance to it in standardised units. Its output goes to the
driver (:func:`models.kmeans.label_customers`, for tests and small data); the segments
stage's published rows come from :mod:`mr_jobs.kmeans_rows`, which labels the same way.
"""

import numpy as np
from mrjob.protocol import RawValueProtocol

from mr_jobs.base import FeatureFileJob
from mr_jobs.kmeans import read_centroids
from mr_jobs.points import assign, read_points, standardise

__all__ = ["MRKMeansLabels"]


class MRKMeansLabels(FeatureFileJob):
    """Feature files -> one ``{"customer_id", "segment", "distance"}`` line per customer."""

    OUTPUT_PROTOCOL = RawValueProtocol

    def configure_args(self):
        super().configure_args()
        self.add_file_arg("--centroids", required=True, help="JSON centroids file")

    def steps(self):
        return [self.points_step(mapper_init=self.mapper_init_centroids)]

    def mapper_init_centroids(self):
        self.mean, self.scale, self.centroids, _ = read_centroids(self.options.centroids)

    def map_points(self, path):
        ids, x = read_points(path, self.centroids.shape[1], with_ids=True)
        if x.shape[0] == 0:
            return
        labels, d2 = assign(standardise(x, self.mean, self.scale), self.centroids)
        rows = zip(ids.tolist(), labels.tolist(), np.sqrt(d2).tolist(), strict=True)
        for customer, label, dist in rows:
            yield None, f'{{"customer_id":{customer},"segment":{label},"distance":{dist!r}}}'


if __name__ == "__main__":
    MRKMeansLabels.run()
