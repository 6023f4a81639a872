"""Coherent forecasts (models/forecast_reconcile.py): the items and ``__other__`` rescaled
to add up to ``total``, in hand-made records and through the forecasts stage."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import forecast_reconcile as reconcile
from models.forecast import backtest_metrics
from models.forecast_stage import BACKTEST_JSONL, FORECASTS_CSV, run_forecast_stage
from models.sales_stage import run_sales_stage
from models.synthetic import generate
from mr_jobs.records import PRESETS

PERIODS = ["2024-01-01", "2024-01-08"]
HELD = ["2023-12-18", "2023-12-25"]


def record(name, forecast, held=None, actual=(10.0, 10.0)):
    """A series record with two forecast periods and, optionally, a two-period backtest."""
    rows = [
        {
            "series": name,
            "period": p,
            "step": i + 1,
            "forecast": f,
            "lower": f - 1,
            "upper": f + 1,
            "model": "m",
        }
        for i, (p, f) in enumerate(zip(PERIODS[: len(forecast)], forecast, strict=True))
    ]
    out = {"series": name, "forecasts": rows, "backtest": None, "held_out": None, "fits": []}
    if held is not None:
        out["held_out"] = {
            "periods": HELD,
            "actual": list(actual),
            "forecast": list(held),
            "lower": [h - 2 for h in held],
            "upper": [h + 2 for h in held],
            "scale": 4.0,
            "naive_mae": 5.0,
        }
        out["backtest"] = {"series": name, "mae": None}
    return out


def test_the_items_and_other_are_rescaled_to_add_up_to_the_total():
    records = [
        record("total", [100.0, 120.0]),
        record("A", [30.0, 40.0]),
        record(reconcile.OTHER, [20.0, 20.0]),
    ]
    plan = reconcile.plan(records, "revenue")
    assert plan["method"] == reconcile.METHOD and plan["series"] == 2
    assert [r["ratio"] for r in plan["forecast"]] == pytest.approx([2.0, 2.0])
    out = [reconcile.reconciled(r, plan) for r in records]
    assert out[0] is records[0]  # the total is kept
    for step in range(2):
        parts = sum(r["forecasts"][step]["forecast"] for r in out[1:])
        assert parts == pytest.approx(out[0]["forecasts"][step]["forecast"])
    assert out[1]["forecasts"][0]["lower"] == pytest.approx(29.0 * 2)
    assert records[1]["forecasts"][0]["forecast"] == 30.0  # the input is not changed


def test_the_backtest_is_rescaled_with_its_own_ratios_and_rescored():
    records = [
        record("total", [100.0, 100.0], held=[30.0, 36.0]),
        record("A", [50.0, 50.0], held=[5.0, 6.0], actual=(12.0, 13.0)),
        record(reconcile.OTHER, [50.0, 50.0], held=[5.0, 6.0]),
    ]
    plan = reconcile.plan(records, "quantity")
    assert [r["ratio"] for r in plan["backtest"]] == pytest.approx([3.0, 3.0])
    a = reconcile.reconciled(records[1], plan)
    assert a["held_out"]["forecast"] == pytest.approx([15.0, 18.0])
    assert a["backtest"]["mae"] == pytest.approx((3.0 + 5.0) / 2)
    assert a["backtest"]["relative_mae"] == pytest.approx(4.0 / 5.0)
    assert a["backtest"]["mase"] == pytest.approx(4.0 / 4.0)
    assert a["held_out"]["lower"] == pytest.approx([9.0, 12.0])  # the bounds too
    same = backtest_metrics([12.0, 13.0], [15.0, 18.0], [9.0, 12.0], [21.0, 24.0], a["held_out"])
    assert {k: a["backtest"][k] for k in same} == same


@pytest.mark.parametrize(
    ("records", "value", "reason"),
    [
        (
            [record("total", [1.0, 1.0]), record(reconcile.OTHER, [1.0, 1.0])],
            "orders",
            "not additive",
        ),
        ([record("total", [1.0, 1.0]), record("A", [1.0, 1.0])], "revenue", "no __other__"),
        (
            [record("A", [1.0, 1.0]), record(reconcile.OTHER, [1.0, 1.0])],
            "revenue",
            "no total forecast",
        ),
        (
            [record("total", [1.0, 1.0]), record("A", []), record(reconcile.OTHER, [1.0, 1.0])],
            "revenue",
            "series 'A' has no forecast",
        ),
        (
            [
                record("total", [1.0, 1.0]),
                record("A", [-2.0, 1.0]),
                record(reconcile.OTHER, [1.0, 1.0]),
            ],
            "revenue",
            "sum for 2024-01-01 is -1",
        ),
    ],
)
def test_nothing_is_rescaled_when_the_series_need_not_add_up_and_the_plan_says_why(
    records, value, reason
):
    plan = reconcile.plan(records, value)
    assert plan["method"] is None and reason in plan["reason"]
    assert all(reconcile.reconciled(r, plan) is r for r in records)


def test_a_backtest_that_cannot_be_rescaled_leaves_the_forecasts_coherent_and_says_so():
    records = [
        record("total", [10.0, 10.0], held=[4.0, 4.0]),
        record("A", [2.0, 3.0]),  # no backtest
        record(reconcile.OTHER, [3.0, 2.0], held=[1.0, 1.0]),
    ]
    plan = reconcile.plan(records, "revenue")
    assert plan["method"] == reconcile.METHOD and plan["backtest"] == []
    assert "1 series have no backtest" in plan["backtest_reason"]
    assert reconcile.reconciled(records[2], plan)["held_out"] == records[2]["held_out"]


@pytest.fixture(scope="module")
def sales(tmp_path_factory):
    base = tmp_path_factory.mktemp("reconcile")
    log = base / "log.csv"
    generate(str(log), customers=200, seed=5, days=400)
    frame, _ = run_sales_stage(
        [str(log)], str(base / "sales"), schema=PRESETS["canonical"], period="W", top_n=3
    )
    return frame


def _csv(path):
    return pd.read_csv(Path(path) / FORECASTS_CSV)


def test_the_stage_publishes_coherent_forecasts_and_records_the_ratios(sales, tmp_path):
    options = {"period": "W", "horizon": 4, "backtest_periods": 4, "processes": 1}
    result, manifest = run_forecast_stage(sales, str(tmp_path / "on"), **options)
    _, plain = run_forecast_stage(sales, str(tmp_path / "off"), reconcile="none", **options)
    on, off = _csv(tmp_path / "on"), _csv(tmp_path / "off")
    total = on[on.series == "total"].set_index("period")["forecast"]
    parts = on[on.series != "total"].groupby("period")["forecast"].sum()
    np.testing.assert_allclose(parts.loc[total.index], total, rtol=1e-12)
    off_total = off[off.series == "total"].set_index("period")["forecast"]
    pd.testing.assert_series_equal(total, off_total)
    off_parts = off[off.series != "total"].groupby("period")["forecast"].sum()
    assert np.max(np.abs(off_parts.loc[total.index] - total)) > 1e-6  # not coherent alone
    coherence = manifest["details"]["reconciliation"]
    assert coherence["method"] == reconcile.METHOD and coherence["series"] == 4
    ratios = [r["ratio"] for r in coherence["forecast"]]
    np.testing.assert_allclose(ratios, (off_total / off_parts.loc[off_total.index]).to_numpy())
    assert manifest["parameters"]["reconcile"] == "top-down"
    assert plain["details"]["reconciliation"]["reason"] == "reconcile='none'"
    # the returned frames are the published rows
    np.testing.assert_allclose(result.forecasts["forecast"], on["forecast"], rtol=1e-12)
    published = [json.loads(line) for line in (tmp_path / "on" / BACKTEST_JSONL).open()]
    np.testing.assert_allclose(
        result.backtest["mae"], [row["mae"] for row in published], rtol=1e-12
    )


def test_a_bad_reconcile_choice_is_refused_before_anything_is_written(sales, tmp_path):
    with pytest.raises(ValueError, match="reconcile must be one of top-down, none, not 'x'"):
        run_forecast_stage(sales, str(tmp_path / "out"), period="W", reconcile="x")
    assert not (tmp_path / "out").exists()


def test_the_ratios_are_the_same_bits_in_any_order_of_the_series():
    """The job's reducers hand the series over in another order than the process pool:
    the sums must not depend on it (the runners publish the same bytes)."""
    rng = np.random.default_rng(3)
    items = [
        record(f"I{i}", list(rng.uniform(0.1, 1e4, 2)), held=list(rng.uniform(0.1, 1e4, 2)))
        for i in range(40)
    ]
    items.append(record(reconcile.OTHER, [0.3, 1e-3], held=[7.1, 0.2]))
    total = record("total", [1e5, 2e5], held=[9e4, 8e4])
    plans = []
    for seed in range(6):
        order = list(items)
        np.random.default_rng(seed).shuffle(order)
        plans.append(json.dumps(reconcile.plan([total, *order], "revenue"), sort_keys=True))
    assert len(set(plans)) == 1
