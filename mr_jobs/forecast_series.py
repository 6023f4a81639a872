"""Forecast every sales series on the cluster: one reducer call per series.

Input: the sales stage's ``part-*`` files (:mod:`mr_jobs.sales`), one JSON object per
series and period::

    {"series": "I0042", "period": "2023-01-02", "revenue": 5.55, "quantity": 6,
     "orders": 3, "customers": 2}

The mapper keys each row by its series and keeps ``[period, value]`` of the measure
``--value``; the rows of a period named in ``--drop-periods`` (a JSON object
``{"YYYY-MM-DD": reason}``: the partial edge weeks the driver found in the sales
manifest) are rejected with that reason. The reducer gets every period of one series (a
series is as long as the data's span in periods, so a task holds one series at a time),
runs the same per-series code as the driver's process pool
(:func:`models.forecast_records.forecast_one`: the model choice, the forecast, the
backtest) and writes one JSON object per series::

    {"series": "I0042", "forecasts": [{...}, ...], "backtest": {...} or null,
     "fits": [{...}, ...]}

with the rows of ``forecasts.csv``, ``backtest.csv`` and ``fits.jsonl``
(:mod:`models.forecast_stage` documents their columns). ``--config`` is the resolved
options of :func:`models.forecast.forecast_series`, as JSON.

Line accounting: ``crm.lines`` read/accepted/rejected over the input rows, rejected by
reason (the ``--drop-periods`` reasons, ``bad_row`` for a line that is not a sales row);
``crm.output`` ``rows`` counts the series written, ``crm.forecasts`` ``failed`` and
``fallback`` the series whose final fit failed or fell back.

The tasks import the ``models`` package, shipped with the job beside ``mr_jobs``: the
nodes' Python needs numpy, pandas and statsmodels (see ``mrjob.conf``).
"""

import json

from mrjob.protocol import BytesValueProtocol
from mrjob.step import MRStep

from mr_jobs.base import CrmJob
from mr_jobs.protocols import CompactJSONProtocol, CompactJSONValueProtocol, loads

__all__ = ["COUNTER_GROUP_FORECASTS", "MRForecastSeries"]

#: Counter group of the series that failed or fell back.
COUNTER_GROUP_FORECASTS = "crm.forecasts"
_VALUES = ("revenue", "quantity", "orders", "customers")


class MRForecastSeries(CrmJob):
    """Sales rows -> one forecast, backtest and fit record per series."""

    INPUT_PROTOCOL = BytesValueProtocol
    INTERNAL_PROTOCOL = CompactJSONProtocol
    OUTPUT_PROTOCOL = CompactJSONValueProtocol
    SHIP_PACKAGES = ("mr_jobs", "models")

    def configure_args(self):
        super().configure_args()
        self.add_passthru_arg("--value", choices=_VALUES, default="revenue")
        self.add_passthru_arg(
            "--drop-periods", default="{}", help="JSON {period: reason} of rows to reject"
        )
        self.add_passthru_arg(
            "--config", required=True, help="forecast_series' resolved options, as JSON"
        )

    def steps(self):
        return [
            MRStep(
                mapper_init=self.mapper_init,
                mapper=self.mapper,
                mapper_final=self.mapper_final,
                reducer_init=self.reducer_init,
                reducer=self.reducer,
                reducer_final=self.reducer_final,
            )
        ]

    def mapper_init(self):
        self._drop = json.loads(self.options.drop_periods)
        self.lines_read = 0
        self.lines_rejected = {}

    def mapper(self, _, raw):
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return
        self.lines_read += 1
        row = _sales_row(text, self.options.value)
        if row is None:
            self.reject_line("bad_row")
            return
        series, period, value = row
        reason = self._drop.get(period)
        if reason is not None:
            self.reject_line(reason)
            return
        yield series, [period, value]

    def mapper_final(self):
        self.report_line_counters()
        return
        yield

    def reducer_init(self):
        from models.forecast_records import forecast_one

        self._forecast_one = forecast_one
        self._config = json.loads(self.options.config)
        self._written = 0
        self._status = {"failed": 0, "fallback": 0}

    def reducer(self, series, rows):
        record = self._forecast_one(series, list(rows), self._config)
        status = record["fits"][0]["status"]
        if status in self._status:
            self._status[status] += 1
        self._written += 1
        yield None, record

    def reducer_final(self):
        self.count_output(self._written)
        for status, count in self._status.items():
            if count:
                self.increment_counter(COUNTER_GROUP_FORECASTS, status, count)
        return
        yield


def _sales_row(text, value):
    """``(series, period, value)`` of a sales row, or None when it is not one."""
    try:
        row = loads(text)
    except ValueError:
        return None
    if not isinstance(row, dict):
        return None
    series, period, number = row.get("series"), row.get("period"), row.get(value)
    if not isinstance(series, str) or not isinstance(period, str) or len(period) != 10:
        return None
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return None
    return series, period, number


if __name__ == "__main__":
    MRForecastSeries.run()
