"""The ``sales`` stage: regular sales series, in total and per top item
(:mod:`models.sales_stage`)."""

from models.stages.base import Option, Stage, stage_entry

__all__ = ["SalesStage"]

#: The defaults of :func:`models.sales_stage.run_sales_stage`'s options.
DEFAULT_PERIOD = "W"
DEFAULT_TOP_N = 20


def _options():
    from mr_jobs.sales import MAX_PERIODS

    return (
        Option(
            "period",
            "--period",
            run_flag="--sales-period",
            choices=("D", "W"),
            default=DEFAULT_PERIOD,
            help="sales series period: D (day) or W (Monday-Sunday week) (default: W)",
        ),
        Option(
            "top_n",
            "--top-n",
            run_flag="--sales-top-n",
            type=int,
            default=DEFAULT_TOP_N,
            help="items with a sales series of their own; the rest make __other__ "
            "(default: %(default)s)",
        ),
        Option(
            "max_periods",
            "--max-periods",
            run_flag="--sales-max-periods",
            type=int,
            default=MAX_PERIODS,
            help="the most periods a sales series may span; a longer span is refused "
            f"(default: {MAX_PERIODS:,})",
        ),
    )


class SalesStage(Stage):
    """Sales per day or week; the (small) series go on to the forecasts."""

    name = "sales"
    runner = "models.sales_stage:run_sales_stage"
    options_key = "sales"
    needs = ("inputs", "schema")
    provides = ("series", "sales_period")

    @property
    def options(self):
        return _options()

    def compute(self, run):
        from models.sales_stage import run_sales_stage

        series, manifest = run_sales_stage(
            run.inputs,
            run.uri(self.name),
            schema=run.schema,
            as_of=run.as_of,
            **run.jobs(),
            **self.options_of(run),
        )
        run.results["series"] = series
        run.results["sales_period"] = manifest["details"]["period"]
        return [stage_entry(self.name, run.uri(self.name), manifest)]

    def load(self, run, entries):
        from models.forecast_stage import read_sales_series

        run.results["series"], run.results["sales_period"] = read_sales_series(run.uri(self.name))
