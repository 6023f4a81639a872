"""The ``forecasts`` stage: a model per sales series (:mod:`models.forecast_stage`).

With the inline runner the series are fitted in the driver's process pool; with any other
the MapReduce job :mod:`mr_jobs.forecast_series` fits them on the runner's tasks, from
the published sales output.
"""

import datetime
import os

from models.stages.base import Option, Stage, stage_entry

__all__ = ["ForecastsStage", "DEFAULT_PROCESSES", "RECONCILE", "data_span"]

#: Worker processes fitting the series by default (the stage and both commands).
DEFAULT_PROCESSES = min(2, os.cpu_count() or 1)
#: The choices of ``reconcile`` (:mod:`models.forecast_reconcile`), the default first.
RECONCILE = ("top-down", "none")


def _options():
    return (
        Option(
            "horizon",
            "--horizon",
            type=int,
            omit_none=True,
            help="periods to forecast (default: 28 days or 8 weeks, as the sales period)",
        ),
        Option(
            "value",
            "--value",
            run_flag="--forecast-value",
            choices=("revenue", "quantity", "orders", "customers"),
            default="revenue",
            help="the measure forecast (default: revenue)",
        ),
        Option(
            "backtest_periods",
            "--backtest",
            run_flag="--forecast-backtest",
            type=int,
            omit_none=True,
            help="periods held out for the backtest, 0 for none (default: 28 days or 8 weeks)",
        ),
        Option(
            "method",
            "--method",
            run_flag="--forecast-method",
            choices=("arima", "select"),
            default="select",
            help="arima: the ARIMA grid by AIC; select: the combination of Theta and the "
            "optimised Theta, or ARIMA, ETS, Theta or the seasonal naive where one forecasts "
            "clearly better over four rolling origins (default: %(default)s)",
        ),
        Option(
            "reconcile",
            "--reconcile",
            run_flag="--forecast-reconcile",
            choices=RECONCILE,
            default=RECONCILE[0],
            help="top-down: the items and __other__ rescaled to add up to the total's "
            "forecast (revenue, quantity); none: each series as forecast (default: "
            "%(default)s)",
        ),
        Option(
            "processes",
            "--processes",
            run_flag="--forecast-processes",
            type=int,
            default=DEFAULT_PROCESSES,
            help="worker processes fitting the series (default: %(default)s)",
        ),
    )


class ForecastsStage(Stage):
    """Forecasts and backtests of the sales stage's series."""

    name = "forecasts"
    runner = "models.forecast_stage:run_forecast_stage"
    options_key = "forecasts"
    needs = ("series", "sales_period", "rfm_details", "rfm_lines")

    @property
    def options(self):
        return _options()

    def compute(self, run):
        from models.forecast_stage import run_forecast_stage

        span = data_span(run.results["rfm_details"], run.as_of, run.results.get("rfm_lines"))
        if run.runner == "inline":  # the driver's process pool
            series, jobs = run.results["series"], {"period": run.results["sales_period"]}
        else:  # the forecasts job, one reducer call per series, on the runner's tasks
            series, jobs = run.uri("sales"), {"runner": run.runner, "conf_paths": run.conf_paths}
        _result, manifest = run_forecast_stage(
            series,
            run.uri(self.name),
            **jobs,
            data_span=span,
            source=run.uri("sales"),
            overwrite=run.overwrite,
            reporter=run.reporter,
            **self.options_of(run),
        )
        return [stage_entry(self.name, run.uri(self.name), manifest)]


def data_span(details, as_of=None, lines=None):
    """(first, last) days the accepted lines cover, from the RFM manifest's details.

    The span runs from the first to the last purchase date, except that a log cut by
    ``as_of`` (the RFM run rejected lines as ``after_as_of``) covers every day up to
    ``as_of``, purchase or not.

    Parameters
    ----------
    details : dict or None
        The ``details`` of the RFM stage's manifest.
    as_of : str, optional
    lines : dict, optional
        The RFM manifest's line accounting.

    Returns
    -------
    (str, str) or None
        ISO dates; None when no line was accepted.
    """
    from mr_jobs.records import parse_as_of

    if not details or not details.get("last_purchase_date"):
        return None
    first, last = details["first_purchase_date"], details["last_purchase_date"]
    cut = as_of is not None and lines and lines["rejected_by_reason"].get("after_as_of", 0) > 0
    if cut:
        last = max(last, datetime.date.fromordinal(parse_as_of(as_of)).isoformat())
    return first, last
