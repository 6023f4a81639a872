"""The churn stage: published scores, early warning, metrics and model; refusals."""

import datetime
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hdfs_io import LocalFileSystem, PathExists, is_published
from models.churn import load_model
from models.churn_stage import (
    EARLY_WARNING_CSV,
    EARLY_WARNING_JSONL,
    METRICS_JSON,
    MODEL_FILE,
    SCORES_CSV,
    TooFewCustomersError,
    run_churn_stage,
)
from models.rfm_stage import run_rfm_stage
from models.synthetic import generate
from mr_jobs.records import PRESETS

CANONICAL = PRESETS["canonical"]


def _no_nan(text):
    raise ValueError(f"not valid JSON: {text}")


def read_parts(directory):
    rows = []
    for part in sorted(Path(directory).glob("part-*")):
        rows += [json.loads(line, parse_constant=_no_nan) for line in part.open() if line]
    return rows


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("churn-log") / "log.csv"
    generate(str(path), customers=1500, seed=11)
    return path


@pytest.fixture(scope="module")
def published(log, tmp_path_factory):
    out = tmp_path_factory.mktemp("churn") / "churn"
    scored, model, manifest = run_churn_stage(
        [str(log)], str(out), schema=CANONICAL, horizon_days=90, conf_paths=[]
    )
    return out, scored, model, manifest


def test_every_current_customer_is_scored_once_and_published(log, published, tmp_path):
    out, scored, _model, manifest = published
    assert is_published(LocalFileSystem(), str(out))
    rows = read_parts(out)
    current, _ = run_rfm_stage([str(log)], str(tmp_path / "rfm"), schema=CANONICAL)
    assert [r["customer_id"] for r in rows] == sorted(r["customer_id"] for r in current)
    csv = pd.read_csv(out / SCORES_CSV, dtype={"customer_id": str})
    assert csv["customer_id"].tolist() == [r["customer_id"] for r in rows]
    assert np.allclose(csv["churn_probability"], [r["churn_probability"] for r in rows])
    assert "drivers_text" in csv.columns and "drivers" not in csv.columns
    p = np.array([r["churn_probability"] for r in rows])
    assert ((p >= 0) & (p <= 1)).all()
    tiers = np.array([r["risk_tier"] for r in rows])
    assert (tiers[p >= 0.7] == "high").all() and (tiers[p < 0.4] == "low").all()
    assert all(
        r["value_at_risk"] == pytest.approx(r["churn_probability"] * r["value"]) for r in rows
    )
    assert all(d["effect"] > 0 for r in rows for d in r["drivers"])
    assert manifest["details"]["tiers"] == {
        t: int((tiers == t).sum()) for t in ("high", "medium", "low")
    }
    assert manifest["rows_written"] == len(rows) == len(scored)


def test_default_cutoff_is_the_latest_purchase_minus_the_horizon(log, published, tmp_path):
    _out, _scored, model, manifest = published
    rows = read_parts(published[0])
    details = manifest["details"]
    latest = details["scored_as_of"]
    current, _ = run_rfm_stage([str(log)], str(tmp_path / "rfm"), schema=CANONICAL)
    assert latest == max(r["last_purchase"][:10] for r in current)
    expected = datetime.date.fromisoformat(latest) - datetime.timedelta(days=90)
    assert details["cutoff"] == expected.isoformat() == model.info["cutoff"]
    assert "minus horizon_days=90" in details["cutoff_rule"]
    lines = manifest["lines"]
    assert lines["read"] == lines["accepted"] + lines["rejected"]
    assert lines["rejected_by_reason"]["after_as_of"] > 0  # the lines after the cutoff
    assert len(rows) > details["labelled_customers"]  # customers who joined after it


def test_early_warning_lists_high_value_customers_at_high_risk_by_value_at_risk(published):
    out, scored, _model, manifest = published
    warning = [
        json.loads(line, parse_constant=_no_nan) for line in (out / EARLY_WARNING_JSONL).open()
    ]
    assert len(warning) == manifest["details"]["early_warning"] > 0
    threshold = float(np.quantile(scored["value"], 0.8))
    assert all(w["risk_tier"] == "high" and w["value"] >= threshold for w in warning)
    at_risk = [w["value_at_risk"] for w in warning]
    assert at_risk == sorted(at_risk, reverse=True)
    assert [w["rank"] for w in warning] == list(range(1, len(warning) + 1))
    csv = pd.read_csv(out / EARLY_WARNING_CSV, dtype={"customer_id": str})
    assert csv["customer_id"].tolist() == [w["customer_id"] for w in warning]


def test_metrics_are_valid_json_and_beat_chance(published):
    out, _scored, model, manifest = published
    metrics = json.loads((out / METRICS_JSON).read_text(), parse_constant=_no_nan)
    assert metrics["chosen"] == model.chosen == manifest["details"]["chosen"]
    assert 0.5 < metrics["metrics"]["roc_auc"] <= 1.0
    assert metrics["metrics"] == pytest.approx(manifest["details"]["metrics"])
    assert metrics["info"]["horizon_days"] == 90


def test_published_model_loads_and_gives_the_published_probabilities(log, published, tmp_path):
    out, _scored, _model, _manifest = published
    loaded = load_model(out / MODEL_FILE)
    current, _ = run_rfm_stage([str(log)], str(tmp_path / "rfm"), schema=CANONICAL)
    current.sort(key=lambda r: r["customer_id"])
    rows = read_parts(out)
    p = loaded.predict_proba(current)
    assert np.allclose(p, [r["churn_probability"] for r in rows], rtol=0, atol=1e-12)


def test_given_current_rows_give_the_same_scores_as_computing_them(log, published, tmp_path):
    current, _ = run_rfm_stage([str(log)], str(tmp_path / "rfm"), schema=CANONICAL)
    out = tmp_path / "churn"
    run_churn_stage([str(log)], str(out), schema=CANONICAL, horizon_days=90, current_rows=current)
    assert (out / "part-00000").read_bytes() == (published[0] / "part-00000").read_bytes()
    assert (out / SCORES_CSV).read_bytes() == (published[0] / SCORES_CSV).read_bytes()


def test_too_few_customers_raise_and_publish_nothing(tmp_path):
    data = tmp_path / "tiny.csv"
    data.write_text(
        "order_id,customer_id,timestamp,item_id,quantity,unit_price\n"
        "O1,C1,2024-01-01,I1,1,2.50\nO2,C2,2024-03-01,I1,1,2.50\nO3,C1,2024-06-01,I2,1,4.00\n"
    )
    out = tmp_path / "churn"
    with pytest.raises(TooFewCustomersError, match="each class needs"):
        run_churn_stage([str(data)], str(out), schema=CANONICAL, horizon_days=30)
    assert not out.exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"horizon_days": 0}, "horizon_days=0"),
        ({"cutoff": "2024-13-01"}, "cutoff='2024-13-01'"),
        ({"value_quantile": 1.0}, "value_quantile=1.0"),
        ({"value": "shoe_size"}, "value='shoe_size'"),
    ],
)
def test_bad_arguments_are_refused_before_publishing(log, tmp_path, kwargs, message):
    out = tmp_path / "churn"
    current = [{"customer_id": "C1", "last_purchase": "2024-01-01", "total_value": 1.0}]
    with pytest.raises(ValueError, match=message):
        run_churn_stage([str(log)], str(out), schema=CANONICAL, current_rows=current, **kwargs)
    assert not out.exists()


def test_an_existing_output_is_refused_before_any_job(log, tmp_path):
    out = tmp_path / "churn"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(PathExists):
        run_churn_stage([str(log)], str(out), schema=CANONICAL)
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
