"""One record per forecast series: what the driver's process pool and the MapReduce job
(:mod:`mr_jobs.forecast_series`) both produce, so that every runner publishes the same rows.

A series record is a JSON object::

    {"series": "total",
     "forecasts": [{"series", "period", "step", "forecast", "lower", "upper", "model"}, ...],
     "backtest": {"series", "n", "model", "seasonal_lag", "mae", ...} or null,
     "held_out": {"periods", "actual", "forecast", "lower", "upper", "scale", "naive_mae"}
                 or null,
     "fits": [{"series", "stage": "final", ...}, {"series", "stage": "backtest", ...}]}

whose rows are those of ``forecasts.csv``, ``backtest.csv`` and ``fits.jsonl``
(:mod:`models.forecast_stage`; ``held_out`` is the backtest's forecast of each held-out
period, which :mod:`models.forecast_reconcile` rescales), with dates as ``YYYY-MM-DD``
and undefined numbers as null. :func:`forecast_one` makes one from a series'
``[period, value]`` rows (the reducer's call); :func:`forecast_pool` makes them all in the
driver's process pool (inline runs) and also returns the
:class:`~models.forecast.ForecastResult` frames.
"""

import numpy as np
import pandas as pd

from models.forecast import (
    _BACKTEST_COLUMNS,
    _EPOCH,
    _FIT_COLUMNS,
    _FORECAST_COLUMNS,
    _assemble,
    _crashed,
    _run_all,
    _run_series,
    _to_series,
)
from models.outputs import json_plain

__all__ = [
    "BACKTEST_COLUMNS",
    "FIT_COLUMNS",
    "FORECAST_COLUMNS",
    "forecast_one",
    "forecast_pool",
    "series_record",
]

FORECAST_COLUMNS = list(_FORECAST_COLUMNS)
BACKTEST_COLUMNS = list(_BACKTEST_COLUMNS)
FIT_COLUMNS = list(_FIT_COLUMNS)


def series_record(outcome):
    """The JSON record (module docstring) of one series' outcome of the forecast code.

    Parameters
    ----------
    outcome : dict
        ``series``, ``final`` (the fit record), ``forecast`` (None when it failed) and
        ``backtest`` (None without a backtest), as the per-series code returns it.

    Returns
    -------
    dict
    """
    name = outcome["series"]
    final = outcome["final"]
    fits = [{"series": name, "stage": "final", **final}]
    forecasts = []
    fc = outcome["forecast"]
    if fc is not None:
        periods = _EPOCH + np.asarray(fc["days"]).astype("timedelta64[D]")
        for step, period in enumerate(periods):
            forecasts.append(
                {
                    "series": name,
                    "period": str(period),
                    "step": step + 1,
                    "forecast": float(fc["forecast"][step]),
                    "lower": float(fc["lower"][step]),
                    "upper": float(fc["upper"][step]),
                    "model": final["model"],
                }
            )
    backtest, held_out = None, None
    bt = outcome["backtest"]
    if bt is not None:
        if bt["fit"] is not None:
            fits.append({"series": name, "stage": "backtest", **bt["fit"]})
        backtest = {"series": name, **{c: bt[c] for c in BACKTEST_COLUMNS[1:]}}
        if bt.get("held_out") is not None:
            held = bt["held_out"]
            periods = _EPOCH + np.asarray(held["days"]).astype("timedelta64[D]")
            held_out = {"periods": [str(p) for p in periods]}
            held_out.update({k: held[k] for k in ("actual", "forecast", "lower", "upper")})
            held_out.update({k: backtest[k] for k in ("scale", "naive_mae")})
    return json_plain(
        {
            "series": name,
            "forecasts": forecasts,
            "backtest": backtest,
            "held_out": held_out,
            "fits": [{c: fit.get(c) for c in FIT_COLUMNS} for fit in fits],
        }
    )


def forecast_one(name, rows, config):
    """Forecast and backtest one series from its rows: the MapReduce reducer's call.

    Parameters
    ----------
    name : str
    rows : list of [str, float]
        ``[period, value]`` pairs (``YYYY-MM-DD``), in any order.
    config : dict
        The resolved options of :func:`models.forecast.forecast_series` (its result's
        ``parameters`` without ``processes`` and ``value``).

    Returns
    -------
    dict
        The series record. A series whose rows cannot make a series (a duplicated
        period, a weekly period that is not a Monday) is a record with a failed fit and
        that error: it never raises.
    """
    rows = sorted(rows)
    values = pd.Series(
        [v for _, v in rows], index=pd.to_datetime([p for p, _ in rows], format="%Y-%m-%d")
    )
    try:
        [(_, (days, numbers, filled))] = _to_series({name: values}, config["period"], "value")
    except ValueError as exc:
        return series_record(_crashed((name, None, values.to_numpy(), 0, config), exc))
    return series_record(_run_series((name, days, numbers, filled, config)))


def forecast_pool(frame, value, config, processes, progress=None):
    """Forecast every series of ``frame`` in the driver's process pool.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long format: ``series``, ``period`` and the column ``value``.
    value : str
    config : dict
        As :func:`forecast_one`.
    processes : int
    progress : callable, optional

    Returns
    -------
    (models.forecast.ForecastResult, list of dict)
        The frames, and the series records in input order.
    """
    series = _to_series(frame, config["period"], value)
    tasks = [(name, days, values, filled, config) for name, (days, values, filled) in series]
    outcomes = _run_all(tasks, processes, progress)
    result = _assemble(outcomes, {**config, "processes": processes, "value": value})
    return result, [series_record(o) for o in outcomes]
