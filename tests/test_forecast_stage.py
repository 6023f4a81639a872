"""The forecasts stage: partial edge weeks, the published layout, accounting, refusals."""

import datetime
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import models.forecast_stage
from hdfs_io import LocalFileSystem, PathExists, is_published, read_manifest
from models.forecast import ForecastResult
from models.forecast_select import ORIGINS
from models.forecast_stage import (
    BACKTEST_CSV,
    BACKTEST_JSONL,
    FITS_JSONL,
    FORECASTS_CSV,
    partial_edge_periods,
    read_sales_series,
    run_forecast_stage,
)
from models.progress import Reporter
from models.sales_stage import run_sales_stage
from models.synthetic import generate
from mr_jobs.records import PRESETS


def _no_nan(text):
    raise ValueError(f"not valid JSON: {text}")


def read_jsonl(path):
    return [json.loads(line, parse_constant=_no_nan) for line in Path(path).open() if line]


def read_parts(directory):
    rows = []
    for part in sorted(Path(directory).glob("part-*")):
        rows += [json.loads(line, parse_constant=_no_nan) for line in part.open() if line]
    return rows


def weekly_frame(weeks=90, start="2022-12-26", names=("total", "A"), seed=3, flat=()):
    """Long sales frame: a trend, a yearly wave and noise per series, on Mondays; the
    ``flat`` series are all zeros (no sales at all)."""
    rng = np.random.default_rng(seed)
    periods = pd.date_range(start, periods=weeks, freq="W-MON")
    t = np.arange(weeks)
    frames = []
    for i, name in enumerate(list(names) + list(flat)):
        level = 1000.0 / (i + 1)
        y = level * (1 + 0.004 * t) * (1 + 0.2 * np.sin(2 * np.pi * t / 52.18))
        y = np.round(y * rng.lognormal(0, 0.05, weeks), 2)
        if name in flat:
            y = np.zeros(weeks)
        frames.append(
            pd.DataFrame(
                {
                    "series": name,
                    "period": periods,
                    "revenue": y,
                    "quantity": np.round(y / 10),
                    "orders": np.round(y / 20).astype(int),
                    "customers": np.round(y / 30).astype(int),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def mondays(start, n):
    first = datetime.date.fromisoformat(start)
    return [first + datetime.timedelta(weeks=i) for i in range(n)]


def test_partial_first_and_last_weeks_are_found_from_the_log_span():
    weeks = mondays("2022-12-26", 106)  # to 2024-12-30
    dropped, note = partial_edge_periods(weeks, "W", ("2023-01-01", "2024-12-30"))
    assert dropped == [
        {"period": "2022-12-26", "reason": "partial_first_week", "days_covered": 1},
        {"period": "2024-12-30", "reason": "partial_last_week", "days_covered": 1},
    ]
    assert note is None


def test_full_edge_weeks_and_daily_series_are_kept():
    weeks = mondays("2023-01-02", 10)
    assert partial_edge_periods(weeks, "W", ("2023-01-02", "2023-03-12")) == ([], None)
    days = [datetime.date(2023, 1, 1) + datetime.timedelta(days=i) for i in range(10)]
    assert partial_edge_periods(days, "D", ("2023-01-01", "2023-01-10")) == ([], None)
    assert partial_edge_periods(weeks, "W", None) == ([], None)


def test_a_span_outside_the_edge_weeks_drops_nothing_and_says_why():
    weeks = mondays("2023-01-02", 10)  # to the week of 2023-03-06
    dropped, note = partial_edge_periods(weeks, "W", ("2022-11-03", "2023-02-15"))
    assert dropped == []
    assert "first_day 2022-11-03" in note and "last_day 2023-02-15" in note


def test_one_partial_week_is_dropped_once():
    dropped, _ = partial_edge_periods(mondays("2023-01-02", 1), "W", ("2023-01-03", "2023-01-05"))
    assert [d["reason"] for d in dropped] == ["partial_first_week"]


def test_stage_publishes_forecasts_backtests_and_fits_with_the_accounting(tmp_path):
    # 2022-12-26 .. 2024-12-30 (106 Mondays); the log runs from a Sunday to a Monday,
    # as the built-in sample does: both edge weeks hold one day of data and are left out
    frame = weekly_frame(weeks=106, flat=("__other__",))
    out = tmp_path / "forecasts"
    stream = io.StringIO()
    result, manifest = run_forecast_stage(
        frame,
        str(out),
        period="W",
        horizon=6,
        data_span=("2023-01-01", "2024-12-30"),
        source="sales/",
        transform="none",
        method="arima",  # the ARIMA grid's records (orders, fallbacks) are checked here
        reporter=Reporter(stream),
    )
    assert is_published(LocalFileSystem(), str(out))
    assert read_manifest(LocalFileSystem(), str(out)) == json.loads(json.dumps(manifest))
    names = ["total", "A", "__other__"]
    rows = read_parts(out)
    assert len(rows) == manifest["rows_written"] == 6 * 3
    for name in names:
        assert [r["step"] for r in rows if r["series"] == name] == [1, 2, 3, 4, 5, 6]
    assert all(r["lower"] <= r["forecast"] <= r["upper"] for r in rows)
    csv = pd.read_csv(out / FORECASTS_CSV, keep_default_na=False)
    assert csv.to_dict("records") == rows
    # the last Monday fitted is 2024-12-23: the forecasts start the week after
    assert manifest["details"]["first_period"] == "2023-01-02"
    assert manifest["details"]["last_period"] == "2024-12-23"
    assert manifest["details"]["periods_fitted"] == 104
    assert rows[0]["period"] == "2024-12-30"
    assert manifest["details"]["dropped_periods"] == [
        {"period": "2022-12-26", "reason": "partial_first_week", "days_covered": 1},
        {"period": "2024-12-30", "reason": "partial_last_week", "days_covered": 1},
    ]
    assert manifest["details"]["partial_periods_note"] is None
    lines = manifest["lines"]
    assert lines == {
        "read": 318,
        "accepted": 312,
        "rejected": 6,
        "rejected_by_reason": {"partial_first_week": 3, "partial_last_week": 3},
    }
    assert lines["read"] == lines["accepted"] + lines["rejected"]
    assert result.fits.loc[result.fits["stage"] == "final", "n"].tolist() == [104] * 3
    # the all-zero series: the seasonal naive, MASE and relative MAE undefined -> null
    backtest = read_jsonl(out / BACKTEST_JSONL)
    assert [b["series"] for b in backtest] == names
    assert all(b["n"] == 8 for b in backtest)
    other = backtest[2]
    assert other["mase"] is None and other["relative_mae"] is None and other["mape"] is None
    backtest_csv = pd.read_csv(out / BACKTEST_CSV)
    assert backtest_csv["series"].tolist() == names
    assert math.isnan(backtest_csv["mase"].iloc[2])
    assert backtest_csv["mae"].tolist() == pytest.approx([b["mae"] for b in backtest])
    fits = read_jsonl(out / FITS_JSONL)
    assert {(f["series"], f["stage"]) for f in fits} == {
        (s, stage) for s in names for stage in ("final", "backtest")
    }
    total_final = next(f for f in fits if f["series"] == "total" and f["stage"] == "final")
    assert isinstance(total_final["order"], list) and len(total_final["order"]) == 3
    details = manifest["details"]
    assert details["series"] == 3 and details["series_failed"] == []
    assert details["series_fallback"] == ["__other__"]
    assert details["models"]["total"] == total_final["model"]
    assert details["models"]["__other__"].startswith("seasonal naive")
    summary = details["backtest_summary"]
    assert summary["total"]["mase"] == pytest.approx(result.backtest["mase"].iloc[0])
    finite = result.backtest["relative_mae"].dropna()
    assert len(finite) == 2
    assert summary["median_relative_mae"] == pytest.approx(finite.median())
    assert summary["beat_seasonal_naive"] == int((finite < 1).sum())
    assert summary["series_backtested"] == 3
    assert set(manifest["outputs"]) == {FORECASTS_CSV, BACKTEST_CSV, BACKTEST_JSONL, FITS_JSONL}
    assert manifest["inputs"] == [{"path": "sales/", "bytes": None}]
    parameters = manifest["parameters"]
    assert parameters["backtest_periods"] == 8 and parameters["transform"] == "none"
    assert parameters["alpha"] == 0.05 and parameters["value"] == "revenue"
    said = stream.getvalue()
    assert "[forecasts] left out 2022-12-26: partial_first_week" in said
    assert (
        "forecasts: 318 rows in, 18 rows out, 6 rejected "
        "(partial_first_week=3, partial_last_week=3)" in said
    )


def test_a_series_that_cannot_be_forecast_is_reported_and_the_others_published(tmp_path):
    frame = weekly_frame(weeks=20, names=("total", "broken"), flat=("flat",))
    frame.loc[frame["series"] == "broken", "revenue"] = np.nan
    result, manifest = run_forecast_stage(
        frame,
        str(tmp_path / "f"),
        period="W",
        horizon=3,
        backtest_periods=0,
        maxiter=20,
        method="arima",  # a constant series falls back to the seasonal naive there
    )
    assert manifest["details"]["series_failed"] == ["broken"] == result.failed()
    assert manifest["details"]["series_fallback"] == ["flat"]
    assert manifest["details"]["models"]["broken"] is None
    text = (tmp_path / "f" / "_manifest.json").read_text()
    assert json.loads(text, parse_constant=_no_nan)["details"]["series_failed"] == ["broken"]
    rows = read_parts(tmp_path / "f")
    assert [r["series"] for r in rows] == ["total"] * 3 + ["flat"] * 3
    failed = [f for f in read_jsonl(tmp_path / "f" / FITS_JSONL) if f["series"] == "broken"]
    assert failed[0]["status"] == "failed" and "not finite" in failed[0]["error"]
    assert manifest["lines"]["accepted"] == len(frame)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"value": "profit"}, "value='profit'"),
        ({"period": "M"}, "period='M'"),
        ({"horizon": 0}, "horizon=0"),
        ({"processes": 0}, "processes=0"),
        ({"horizon": 2.5}, "horizon=2.5"),
        ({"data_span": ("2023-01-01", "soon")}, "last_day='soon'"),
        ({"data_span": ("2023-02-01", "2023-01-01")}, "first_day is after last_day"),
        ({"backtest_periods": -1}, "backtest_periods=-1"),
        ({"alpha": 2}, "alpha=2"),
        ({"transform": "boxcox"}, "transform='boxcox'"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, kwargs, message):
    options = {"period": "W", **kwargs}
    with pytest.raises(ValueError, match=message):
        run_forecast_stage(weekly_frame(weeks=20), str(tmp_path / "f"), **options)
    assert list(tmp_path.iterdir()) == []  # not even a staging directory


def test_unknown_forecast_options_and_a_frame_without_the_value_are_refused(tmp_path):
    with pytest.raises(TypeError, match="horizon_days"):
        run_forecast_stage(weekly_frame(weeks=20), str(tmp_path / "f"), period="W", horizon_days=3)
    frame = weekly_frame(weeks=20).drop(columns="orders")
    with pytest.raises(ValueError, match=r"no column\(s\) \['orders'\]"):
        run_forecast_stage(frame, str(tmp_path / "f"), period="W", value="orders")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_is_refused_before_fitting(tmp_path, monkeypatch):
    real = models.forecast_stage.forecast_series

    def no_fitting(data, **kwargs):
        assert len(data) == 0, "a series was fitted"  # only the no-data argument check
        return real(data, **kwargs)

    monkeypatch.setattr(models.forecast_stage, "forecast_series", no_fitting)
    out = tmp_path / "f"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(PathExists):
        run_forecast_stage(weekly_frame(weeks=20), str(out), period="W")
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_no_series_publishes_an_empty_result_with_a_manifest(tmp_path):
    empty = weekly_frame(weeks=1).iloc[0:0]
    out = tmp_path / "f"
    result, manifest = run_forecast_stage(
        empty, str(out), period="W", data_span=("2023-01-01", "2023-03-01")
    )
    assert isinstance(result, ForecastResult) and result.forecasts.empty
    assert is_published(LocalFileSystem(), str(out))
    assert read_parts(out) == [] and read_jsonl(out / BACKTEST_JSONL) == []
    assert list(pd.read_csv(out / FORECASTS_CSV).columns) == [
        "series",
        "period",
        "step",
        "forecast",
        "lower",
        "upper",
        "model",
    ]
    assert manifest["lines"] == {
        "read": 0,
        "accepted": 0,
        "rejected": 0,
        "rejected_by_reason": {},
    }
    assert manifest["rows_written"] == 0 and manifest["details"]["series"] == 0
    assert manifest["parameters"]["backtest_periods"] == 8
    assert manifest["details"]["backtest_summary"]["series_backtested"] == 0


@pytest.fixture(scope="module")
def sales_output(tmp_path_factory):
    base = tmp_path_factory.mktemp("sales")
    log = base / "log.csv"
    generate(str(log), customers=200, seed=5, days=400)
    out = base / "sales"
    frame, _ = run_sales_stage(
        [str(log)], str(out), schema=PRESETS["canonical"], period="W", top_n=2
    )
    return out, frame


def test_sales_output_reads_back_and_forecasts_the_same_with_one_or_two_processes(
    sales_output, tmp_path
):
    path, returned = sales_output
    frame, period = read_sales_series(str(path))
    assert period == "W"
    pd.testing.assert_frame_equal(frame, returned)
    published = read_manifest(LocalFileSystem(), str(path))["details"]
    assert list(dict.fromkeys(frame["series"])) == published["series"]
    assert published["series"][:3] == ["total", *[t["item_id"] for t in published["top_items"]]]
    assert len(frame) == len(published["series"]) * published["periods"]
    assert frame["period"].dt.day_of_week.eq(0).all()  # Mondays
    assert frame["revenue"].dtype == "float64" and frame["orders"].dtype == "int64"
    options = {"period": period, "horizon": 4, "backtest_periods": 0}
    run_forecast_stage(frame, str(tmp_path / "one"), processes=1, **options)
    run_forecast_stage(frame, str(tmp_path / "two"), processes=2, **options)
    one, two = read_parts(tmp_path / "one"), read_parts(tmp_path / "two")
    assert len(one) == 4 * len(published["series"])
    assert one == two
    assert (tmp_path / "one" / FORECASTS_CSV).read_text() == (
        tmp_path / "two" / FORECASTS_CSV
    ).read_text()


def test_reading_a_directory_that_is_not_a_published_sales_output_is_refused(
    sales_output, tmp_path
):
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path}' is not a published result")):
        read_sales_series(str(tmp_path))
    forecasts = tmp_path / "f"
    run_forecast_stage(weekly_frame(weeks=1).iloc[0:0], str(forecasts), period="W")
    with pytest.raises(ValueError, match="not sales series"):
        read_sales_series(str(forecasts))


def test_the_default_choice_records_every_score_and_counts_the_models_won(tmp_path):
    frame = weekly_frame(weeks=106, flat=("__other__",))
    out = tmp_path / "forecasts"
    result, manifest = run_forecast_stage(frame, str(out), period="W", horizon=6)
    details = manifest["details"]
    assert manifest["parameters"]["method"] == "select"
    finals = [f for f in read_jsonl(out / FITS_JSONL) if f["stage"] == "final"]
    assert sum(details["models_won"].values()) == len(finals) == details["series"]
    for fit in finals:
        scores = fit["selection"]["scores"]
        assert {"seasonal naive", "ETS(A,N,N)", "Theta", "ARIMA"} <= set(scores)
        assert len(fit["selection"]["origins"]) == ORIGINS
    assert result.failed() == [] and len(read_parts(out)) == 6 * len(finals)
