"""The ``churn`` stage: model, scores of every customer, early warning
(:mod:`models.churn_stage`)."""

from models.stages.base import Option, Stage, skipped_for, stage_entry
from models.stages.rfm import no_customer_reason

__all__ = ["ChurnStage"]

#: The default of ``--horizon-days`` (:data:`models.churn_stage.DEFAULT_HORIZON_DAYS`).
DEFAULT_HORIZON_DAYS = 90


def _options():
    from mr_jobs.churn_rules import DEFAULT_MAX_TRAIN

    return (
        Option(
            "horizon_days",
            "--horizon-days",
            run_flag="--churn-horizon-days",
            type=int,
            default=DEFAULT_HORIZON_DAYS,
            help="churned = no purchase within this many days after the cutoff; at most "
            "3,650 (default: %(default)s)",
        ),
        Option(
            "cutoff",
            "--cutoff",
            run_flag="--churn-cutoff",
            metavar="YYYY-MM-DD",
            omit_none=True,
            help="training cutoff (default: the latest purchase date minus the horizon)",
        ),
        Option(
            "seed",
            "--seed",
            run_flag="--churn-seed",
            type=int,
            default=0,
            help="seed of the split, the folds and the tree ensemble (default: %(default)s)",
        ),
        Option(
            "churn_max_train",
            "--max-train",
            run_flag="--churn-max-train",
            type=int,
            default=DEFAULT_MAX_TRAIN,
            help="fit on at most this many labelled customers, a seeded sample by a hash of "
            f"the id (default: {DEFAULT_MAX_TRAIN:,})",
        ),
    )


class ChurnStage(Stage):
    """Churn trained by a cutoff and a horizon on a bounded sample; every current
    customer scored on the tasks; skipped when either class has too few customers."""

    name = "churn"
    runner = "models.churn_stage:run_churn_stage"
    options_key = "churn"
    needs = ("inputs", "schema", "rfm_details")

    @property
    def options(self):
        return _options()

    def check(self, options, run):
        from models.churn_stage import check_options

        check_options(as_of=run.as_of, **options)

    def skip_reason(self, run):
        return no_customer_reason(run)

    def compute(self, run):
        from models.churn_stage import TooFewCustomersError, run_churn_stage

        try:
            _scored, _model, manifest = run_churn_stage(
                run.inputs,
                run.uri(self.name),
                schema=run.schema,
                current_path=run.uri("rfm"),
                as_of=run.as_of,
                **run.jobs(),
                **self.options_of(run),
            )
        except TooFewCustomersError as e:
            return skipped_for(run, self.name, e)
        return [stage_entry(self.name, run.uri(self.name), manifest)]
