"""The ``segments`` stage: behavioural segments by distributed K-Means
(:mod:`models.kmeans_stage`)."""

from models.stages.base import Option, Stage, skipped_for, stage_entry
from models.stages.rfm import no_customer_reason

__all__ = ["SegmentsStage"]


def _options():
    from models.kmeans_stage import DEFAULTS

    return (
        Option(
            "k",
            "--k",
            default=DEFAULTS["k"],
            help="number of segments: an int, a range like 4-8 or a list like 4,6,8; with "
            "several, the best silhouette picks one (default: %(default)s)",
        ),
        Option(
            "features",
            "--features",
            default=DEFAULTS["features"],
            help="comma-separated customer features (recency, frequency, monetary, "
            "order_value, tenure, order_rate, basket_size, line_value, units_per_line; see "
            "the README) (default: %(default)s)",
        ),
        Option(
            "seed",
            "--seed",
            run_flag="--kmeans-seed",
            type=int,
            default=DEFAULTS["seed"],
            help="seed of the sample and of k-means++ (default: %(default)s)",
        ),
        Option(
            "tol",
            "--tol",
            type=float,
            default=DEFAULTS["tol"],
            help="stop when the squared centre shift <= tol x mean feature variance "
            "(default: %(default)s)",
        ),
        Option(
            "max_iter",
            "--max-iter",
            type=int,
            default=DEFAULTS["max_iter"],
            help="most Lloyd iterations (MapReduce runs) per k (default: %(default)s)",
        ),
        Option(
            "n_init",
            "--n-init",
            type=int,
            default=DEFAULTS["n_init"],
            help="k-means++ seedings tried on the sample (default: %(default)s)",
        ),
        Option(
            "sample_size",
            "--sample-size",
            type=int,
            default=DEFAULTS["sample_size"],
            help="customers in the uniform sample for seeding and silhouettes "
            "(default: %(default)s)",
        ),
    )


class SegmentsStage(Stage):
    """K-Means over the scored RFM rows; skipped without customers, or with fewer
    customers than any ``k`` asked for (a pipeline on a tiny input still completes)."""

    name = "segments"
    runner = "models.kmeans_stage:run_kmeans_stage"
    options_key = "segments"
    needs = ("rfm_details",)

    @property
    def options(self):
        return _options()

    def check(self, options, run):
        from models.kmeans_stage import check_options

        check_options(**options)

    def skip_reason(self, run):
        return no_customer_reason(run)

    def compute(self, run):
        from models.kmeans import TooFewPointsError
        from models.kmeans_stage import run_kmeans_stage

        try:
            manifest = run_kmeans_stage(
                [run.uri("rfm_segments")], run.uri(self.name), **run.jobs(), **self.options_of(run)
            )
        except TooFewPointsError as e:
            return skipped_for(run, self.name, e)
        return [stage_entry(self.name, run.uri(self.name), manifest)]
