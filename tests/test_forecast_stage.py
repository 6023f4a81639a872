"""The forecasts stage: partial edge weeks, the published layout, accounting, refusals."""

import datetime
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hdfs_io import LocalFileSystem, PathExists, is_published, read_manifest
from models.forecast_stage import (
    BACKTEST_CSV,
    BACKTEST_JSONL,
    FITS_JSONL,
    FORECASTS_CSV,
    partial_edge_periods,
    read_sales_series,
    run_forecast_stage,
)
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


def weekly_frame(weeks=90, start="2022-12-26", names=("total", "A"), seed=3):
    """Long sales frame: a trend, a yearly wave and noise per series, on Mondays."""
    rng = np.random.default_rng(seed)
    periods = pd.date_range(start, periods=weeks, freq="W-MON")
    t = np.arange(weeks)
    frames = []
    for i, name in enumerate(names):
        level = 1000.0 / (i + 1)
        y = level * (1 + 0.004 * t) * (1 + 0.2 * np.sin(2 * np.pi * t / 52.18))
        y = np.round(y * rng.lognormal(0, 0.05, weeks), 2)
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
    frame = weekly_frame()
    out = tmp_path / "forecasts"
    span = ("2022-12-27", "2024-09-15")  # a Tuesday; the Sunday ending the last week
    result, manifest = run_forecast_stage(
        frame, str(out), period="W", horizon=6, data_span=span, source="sales/", transform="none"
    )
    assert is_published(LocalFileSystem(), str(out))
    rows = read_parts(out)
    assert len(rows) == 6 * 2
    assert [r["step"] for r in rows if r["series"] == "A"] == [1, 2, 3, 4, 5, 6]
    assert all(r["lower"] <= r["forecast"] <= r["upper"] for r in rows)
    csv = pd.read_csv(out / FORECASTS_CSV)
    assert csv["forecast"].tolist() == [r["forecast"] for r in rows]
    assert csv["period"].tolist() == [r["period"] for r in rows]
    # the first week (from 2022-12-26) lost its Monday; the last one is whole
    last_fitted = pd.Timestamp(manifest["details"]["last_period"])
    assert rows[0]["period"] == (last_fitted + pd.Timedelta(weeks=1)).strftime("%Y-%m-%d")
    lines = manifest["lines"]
    assert lines == {
        "read": 180,
        "accepted": 178,
        "rejected": 2,
        "rejected_by_reason": {"partial_first_week": 2},
    }
    assert manifest["details"]["first_period"] == "2023-01-02"
    backtest = read_jsonl(out / BACKTEST_JSONL)
    assert [b["series"] for b in backtest] == ["total", "A"]
    assert all(b["n"] == 8 for b in backtest)
    assert len(pd.read_csv(out / BACKTEST_CSV)) == 2
    fits = read_jsonl(out / FITS_JSONL)
    assert {(f["series"], f["stage"]) for f in fits} == {
        (s, stage) for s in ("total", "A") for stage in ("final", "backtest")
    }
    summary = manifest["details"]["backtest_summary"]
    assert summary["total"]["mase"] == pytest.approx(result.backtest["mase"].iloc[0])
    assert summary["series_backtested"] == 2
    assert set(manifest["outputs"]) == {FORECASTS_CSV, BACKTEST_CSV, BACKTEST_JSONL, FITS_JSONL}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"value": "profit"}, "value='profit'"),
        ({"period": "M"}, "period='M'"),
        ({"horizon": 0}, "horizon=0"),
        ({"processes": 0}, "processes=0"),
        ({"data_span": ("2023-01-01", "soon")}, "last_day='soon'"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, kwargs, message):
    options = {"period": "W", **kwargs}
    with pytest.raises(ValueError, match=message):
        run_forecast_stage(weekly_frame(weeks=20), str(tmp_path / "f"), **options)
    assert not (tmp_path / "f").exists()


def test_an_existing_output_is_refused_before_fitting(tmp_path):
    out = tmp_path / "f"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(PathExists):
        run_forecast_stage(weekly_frame(weeks=20), str(out), period="W")
    assert (out / "keep.txt").read_text() == "mine"


def test_no_series_publishes_an_empty_result_with_a_manifest(tmp_path):
    empty = weekly_frame(weeks=1).iloc[0:0]
    out = tmp_path / "f"
    result, manifest = run_forecast_stage(empty, str(out), period="W")
    assert result is None
    assert read_parts(out) == []
    assert manifest["lines"]["read"] == 0 and manifest["rows_written"] == 0


@pytest.fixture(scope="module")
def sales_output(tmp_path_factory):
    base = tmp_path_factory.mktemp("sales")
    log = base / "log.csv"
    generate(str(log), customers=200, seed=5, days=400)
    out = base / "sales"
    run_sales_stage([str(log)], str(out), schema=PRESETS["canonical"], period="W", top_n=1)
    return out


def test_sales_output_reads_back_and_forecasts_the_same_with_one_or_two_processes(
    sales_output, tmp_path
):
    frame, period = read_sales_series(str(sales_output))
    assert period == "W"
    published = read_manifest(LocalFileSystem(), str(sales_output))["details"]
    assert list(dict.fromkeys(frame["series"])) == published["series"]
    assert len(frame) == len(published["series"]) * published["periods"]
    assert frame["period"].dt.dayofweek.eq(0).all()  # Mondays
    options = {"period": period, "horizon": 4, "backtest_periods": 0}
    run_forecast_stage(frame, str(tmp_path / "one"), processes=1, **options)
    run_forecast_stage(frame, str(tmp_path / "two"), processes=2, **options)
    one, two = read_parts(tmp_path / "one"), read_parts(tmp_path / "two")
    assert len(one) == 4 * len(published["series"])
    assert one == two


def test_reading_a_directory_that_is_not_a_published_sales_output_is_refused(
    sales_output, tmp_path
):
    with pytest.raises(ValueError, match="not a published result"):
        read_sales_series(str(tmp_path))
    forecasts = tmp_path / "f"
    run_forecast_stage(weekly_frame(weeks=1).iloc[0:0], str(forecasts), period="W")
    with pytest.raises(ValueError, match="not sales series"):
        read_sales_series(str(forecasts))
