"""The ``clv`` stage: BG/NBD and Gamma-Gamma customer lifetime value
(:mod:`models.clv_stage`)."""

from models.stages.base import Option, Stage, skipped_for, stage_entry
from models.stages.rfm import no_customer_reason

__all__ = ["CLVStage"]


def _options():
    from models.clv_stage import DEFAULTS

    return (
        Option(
            "horizon_days",
            "--horizon-days",
            run_flag="--clv-horizon-days",
            type=int,
            metavar="DAYS",
            default=DEFAULTS["horizon_days"],
            help="days of expected purchases and CLV; at most 3,650 (default: %(default)s)",
        ),
        Option(
            "discount_rate",
            "--discount-rate",
            type=float,
            metavar="RATE",
            default=DEFAULTS["discount_rate"],
            help="monthly discount rate of the CLV (default: %(default)s)",
        ),
        Option(
            "holdout_end",
            "--holdout-end",
            run_flag="--clv-holdout-end",
            metavar="YYYY-MM-DD",
            omit_none=True,
            help="with --as-of: the lines after it up to this day are the holdout, for the "
            "evaluation table holdout.csv",
        ),
        Option(
            "clv_max_train",
            "--max-train",
            run_flag="--clv-max-train",
            type=int,
            metavar="N",
            default=DEFAULTS["clv_max_train"],
            help="fit Gamma-Gamma and set the value tiers on at most this many customers, a "
            f"seeded sample by a hash of the id (default: {DEFAULTS['clv_max_train']:,})",
        ),
        Option(
            "seed",
            "--seed",
            run_flag="--clv-seed",
            type=int,
            metavar="N",
            default=DEFAULTS["seed"],
            help="seed of the sample (default: %(default)s)",
        ),
    )


class CLVStage(Stage):
    """P(alive), expected purchases and value, and CLV of every customer; skipped
    without customers or when the data cannot identify the models (no repeat buyer)."""

    name = "clv"
    runner = "models.clv_stage:run_clv_stage"
    options_key = "clv"
    needs = ("inputs", "schema", "rfm_details")

    @property
    def options(self):
        return _options()

    def check(self, options, run):
        from models.clv_stage import check_options

        check_options(as_of=run.as_of, **options)

    def skip_reason(self, run):
        return no_customer_reason(run)

    def compute(self, run):
        from models.clv_stage import ModelNotIdentifiedError, run_clv_stage

        options = self.options_of(run)
        # the RFM stage's rows serve when they are in days and no holdout is asked for
        given = run.period == "D" and options.get("holdout_end") is None
        try:
            manifest = run_clv_stage(
                run.inputs,
                run.uri(self.name),
                schema=run.schema,
                as_of=run.as_of,
                current_path=run.uri("rfm") if given else None,
                churn_path=run.uri("churn"),
                **run.jobs(),
                **options,
            )
        except ModelNotIdentifiedError as e:
            return skipped_for(run, self.name, e)
        return [stage_entry(self.name, run.uri(self.name), manifest)]
