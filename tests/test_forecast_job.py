"""The forecasts MapReduce job: one reducer call per series, the same records as the pool."""

import json
import zipfile

import pytest

from models.forecast import forecast_series
from models.forecast_records import forecast_one
from models.forecast_stage import (
    BACKTEST_CSV,
    BACKTEST_JSONL,
    FITS_JSONL,
    FORECASTS_CSV,
    read_sales_series,
    run_forecast_stage,
)
from models.sales_stage import run_sales_stage
from models.synthetic import generate
from mr_jobs.base import package_zip
from mr_jobs.forecast_series import MRForecastSeries
from mr_jobs.records import PRESETS
from tests.conftest import run_job

#: What the job's ``--config`` carries: forecast_series' resolved options.
CONFIG = {
    k: v
    for k, v in forecast_series({}, period="W", horizon=4).parameters.items()
    if k not in ("processes", "value")
}


@pytest.fixture(scope="module")
def sales_output(tmp_path_factory):
    """A published weekly sales output: total, 3 items, __other__; the log starts on a
    Wednesday (a partial first week) and ends on a Monday (a partial last week)."""
    base = tmp_path_factory.mktemp("sales")
    log = base / "log.csv"
    generate(str(log), customers=200, seed=5, days=400)
    out = base / "sales"
    run_sales_stage([str(log)], str(out), schema=PRESETS["canonical"], period="W", top_n=3)
    frame, period = read_sales_series(str(out))
    first, last = frame["period"].min().date(), frame["period"].max().date()
    span = ((first.toordinal() + 2), last.toordinal())
    span = tuple(first.fromordinal(d).isoformat() for d in span)
    return out, frame, period, span


def _published(directory):
    """Every published file's lines, sorted (a record per series comes in the reducers'
    order), CSV headers apart; fits without their seconds; the manifest's details and
    lines without the wall time."""
    found = {}
    for name in ("part-00000", FORECASTS_CSV, BACKTEST_CSV, BACKTEST_JSONL):
        lines = (directory / name).read_text().splitlines()
        found[name] = (lines[0] if name.endswith(".csv") else None, sorted(lines))
    fits = [json.loads(line) for line in (directory / FITS_JSONL).read_text().splitlines()]
    for fit in fits:
        assert fit.pop("seconds") >= 0
    found[FITS_JSONL] = sorted(fits, key=lambda f: (f["series"], f["stage"]))
    manifest = json.loads((directory / "_manifest.json").read_text())
    assert manifest["details"].pop("fit_seconds") >= 0
    found["details"], found["lines"] = manifest["details"], manifest["lines"]
    return found, manifest


@pytest.mark.parametrize("runner", ["inline", "local"])
def test_the_job_publishes_what_the_driver_process_pool_publishes(sales_output, tmp_path, runner):
    path, frame, period, span = sales_output
    options = {"horizon": 4, "data_span": span}
    run_forecast_stage(frame, str(tmp_path / "pool"), period=period, processes=2, **options)
    result, manifest = run_forecast_stage(
        str(path), str(tmp_path / "job"), runner=runner, conf_paths=[], **options
    )
    pool, pool_manifest = _published(tmp_path / "pool")
    job, _ = _published(tmp_path / "job")
    assert result is None and manifest["runner"] == runner and pool_manifest["runner"] is None
    assert job == pool
    series = len(frame["series"].unique())
    assert len(pool["part-00000"][1]) == 4 * series == manifest["rows_written"]
    assert manifest["lines"]["rejected_by_reason"] == {
        "partial_first_week": series,
        "partial_last_week": series,
    }
    assert manifest["lines"]["read"] == len(frame)
    assert manifest["details"]["periods_fitted"] == frame["period"].nunique() - 2
    assert manifest["details"]["first_period"] > span[0]


def test_a_weekly_period_setting_that_contradicts_the_sales_manifest_is_refused(
    sales_output, tmp_path
):
    path, *_ = sales_output
    with pytest.raises(ValueError, match="period='D' but the sales output's period is 'W'"):
        run_forecast_stage(str(path), str(tmp_path / "f"), period="D", runner="inline")
    assert not (tmp_path / "f").exists()


def test_a_frame_with_a_cluster_runner_is_refused_before_anything_is_written(
    sales_output, tmp_path
):
    _, frame, period, _ = sales_output
    with pytest.raises(ValueError, match="runner='local' runs the forecasts job"):
        run_forecast_stage(frame, str(tmp_path / "f"), period=period, runner="local")
    assert not (tmp_path / "f").exists()


def _row(series, period, revenue):
    return json.dumps({"series": series, "period": period, "revenue": revenue, "orders": 1})


def test_the_job_counts_every_row_and_reports_a_series_it_cannot_fit_without_stopping():
    weeks = [f"2024-{m:02d}-{d:02d}" for m, d in ((1, 1), (1, 8), (1, 15), (1, 22), (1, 29))]
    lines = [_row("A", w, 10.0 + i) for i, w in enumerate(weeks)]
    lines += [_row("B", "2024-01-01", 1.0), _row("B", "2024-01-01", 2.0)]  # a period twice
    lines += [_row("C", "2024-01-03", 1.0)]  # a Wednesday: not a week
    lines += ["not json", json.dumps({"series": "A", "period": "2024-02-05", "revenue": "x"})]
    lines += [_row("A", "2024-02-05", 99.0)]  # a partial last week, left out
    args = ["--config", json.dumps({**CONFIG, "backtest_periods": 2})]
    args += ["--drop-periods", json.dumps({"2024-02-05": "partial_last_week"})]
    rows, counters = run_job(MRForecastSeries, "\n".join(lines) + "\n", args)
    assert counters["crm.lines"] == {"read": 11, "accepted": 8, "rejected": 3}
    assert counters["crm.rejected"] == {"bad_row": 2, "partial_last_week": 1}
    by_series = {r["series"]: r for r in rows}
    assert sorted(by_series) == ["A", "B", "C"]
    assert [f["period"] for f in by_series["A"]["forecasts"]][0] == "2024-02-05"
    assert by_series["A"]["fits"][0]["status"] == "fallback"  # 5 weeks: too short to choose
    assert "appears more than once" in by_series["B"]["fits"][0]["error"]
    assert "is not a Monday" in by_series["C"]["fits"][0]["error"]
    for name in "BC":
        assert by_series[name]["fits"][0]["status"] == "failed"
        assert by_series[name]["forecasts"] == [] and by_series[name]["backtest"] is None
    assert counters["crm.forecasts"] == {"failed": 2, "fallback": 1}
    assert counters["crm.output"] == {"rows": 3}


def test_one_series_record_is_the_pool_record_of_the_same_series(sales_output):
    _, frame, period, _ = sales_output
    total = frame[frame["series"] == "total"]
    pairs = zip(total["period"], total["revenue"], strict=True)
    rows = [[p.date().isoformat(), float(v)] for p, v in pairs]
    record = forecast_one("total", rows[::-1], {**CONFIG, "period": period})
    again = forecast_one("total", rows, {**CONFIG, "period": period})
    for r in (record, again):
        for fit in r["fits"]:
            fit.pop("seconds")
    assert record == again and len(record["forecasts"]) == 4
    assert record["backtest"]["n"] == CONFIG["backtest_periods"]


def test_the_forecasts_job_ships_the_models_package_with_mr_jobs():
    names = zipfile.ZipFile(package_zip(MRForecastSeries.SHIP_PACKAGES)).namelist()
    for name in ("mr_jobs/forecast_series.py", "models/forecast.py", "models/stages/base.py"):
        assert name in names
    assert not [n for n in names if "__pycache__" in n or not n.endswith(".py")]
    assert "models/forecast.py" not in zipfile.ZipFile(package_zip()).namelist()
