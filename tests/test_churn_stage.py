"""The churn stage: published scores, early warning, metrics and model; refusals."""

import datetime
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import models.churn_stage
from hdfs_io import LocalFileSystem, PathExists, is_published
from models.churn import build_churn_dataset, load_model
from models.churn_stage import (
    CURVES_CSV,
    EARLY_WARNING_CSV,
    EARLY_WARNING_JSONL,
    HISTOGRAM_CSV,
    METRICS_JSON,
    MODEL_FILE,
    SCORES_CSV,
    TooFewCustomersError,
    run_churn_stage,
)
from models.rfm_stage import run_rfm_stage
from models.synthetic import generate
from mr_jobs.churn_sample import sample_key
from mr_jobs.records import PRESETS

CANONICAL = PRESETS["canonical"]


def _no_nan(text):
    raise ValueError(f"not valid JSON: {text}")


def read_parts(directory):
    """Every row of the part files, part after part."""
    rows = []
    for part in sorted(Path(directory).glob("part-*")):
        rows += [json.loads(line, parse_constant=_no_nan) for line in part.open() if line]
    return rows


def days_before(date, days):
    return (datetime.date.fromisoformat(date) - datetime.timedelta(days=days)).isoformat()


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("churn-log") / "log.csv"
    generate(str(path), customers=1500, seed=11)
    return path


@pytest.fixture(scope="module")
def rfm_dir(log, tmp_path_factory):
    """The RFM stage's published rows of the log (as of its latest purchase date)."""
    out = tmp_path_factory.mktemp("rfm") / "rfm"
    run_rfm_stage([str(log)], str(out), schema=CANONICAL, conf_paths=[])
    return out


@pytest.fixture(scope="module")
def current(rfm_dir):
    return sorted(read_parts(rfm_dir), key=lambda r: r["customer_id"])


def scores_of(out):
    """The published score rows as a frame sorted by customer_id."""
    rows = sorted(read_parts(out), key=lambda r: r["customer_id"])
    return pd.DataFrame.from_records(rows)


@pytest.fixture(scope="module")
def published(log, tmp_path_factory):
    out = tmp_path_factory.mktemp("churn") / "churn"
    _parts, model, manifest = run_churn_stage(
        [str(log)], str(out), schema=CANONICAL, horizon_days=90, conf_paths=[]
    )
    return out, scores_of(out), model, manifest


@pytest.fixture
def no_jobs(monkeypatch):
    """Make any MapReduce run of the stage fail the test."""

    def ran(*args, **kwargs):
        raise AssertionError("a MapReduce job ran")

    monkeypatch.setattr(models.churn_stage, "run_rfm_stage", ran)
    monkeypatch.setattr(models.churn_stage, "run_training_rows", ran)


def test_every_current_customer_is_scored_once_and_published(current, published):
    out, scored, model, manifest = published
    assert is_published(LocalFileSystem(), str(out))
    rows = sorted(read_parts(out), key=lambda r: r["customer_id"])
    assert [r["customer_id"] for r in rows] == [r["customer_id"] for r in current]
    for part in out.glob("part-*"):  # each part is sorted by customer_id
        ids = [json.loads(line)["customer_id"] for line in part.open()]
        assert ids == sorted(ids)
    csv = pd.read_csv(out / SCORES_CSV, dtype={"customer_id": str})
    csv = csv.sort_values("customer_id").reset_index(drop=True)
    assert csv["customer_id"].tolist() == [r["customer_id"] for r in rows]
    assert np.allclose(csv["churn_probability"], [r["churn_probability"] for r in rows])
    assert "drivers_text" in csv.columns and "drivers" not in csv.columns
    p = np.array([r["churn_probability"] for r in rows])
    assert ((p >= 0) & (p <= 1)).all()
    high, medium = model.tiers["high"], model.tiers["medium"]
    expected = np.where(p >= high, "high", np.where(p >= medium, "medium", "low"))
    tiers = np.array([r["risk_tier"] for r in rows])
    assert (tiers == expected).all()
    assert set(tiers) == {"high", "medium", "low"}
    assert all(
        r["value_at_risk"] == pytest.approx(r["churn_probability"] * r["value"], rel=1e-12)
        and r["value"] == r["total_value"]
        for r in rows
    )
    assert all(d["effect"] > 0 for r in rows for d in r["drivers"])
    assert manifest["details"]["tiers"] == {
        t: int((tiers == t).sum()) for t in ("high", "medium", "low")
    }
    assert (
        manifest["rows_written"]
        == len(rows)
        == len(scored)
        == manifest["details"]["scored_customers"]
    )
    assert manifest["details"]["value_at_risk_total"] == pytest.approx(
        sum(r["value_at_risk"] for r in rows)
    )


def test_default_cutoff_is_the_latest_purchase_minus_the_horizon(current, published):
    out, _scored, model, manifest = published
    details = manifest["details"]
    latest = max(r["last_purchase"][:10] for r in current)
    assert details["scored_as_of"] == latest
    assert details["cutoff"] == days_before(latest, 90) == model.info["cutoff"]
    assert details["horizon_end"] == latest
    assert details["cutoff_rule"] == f"latest purchase date {latest} minus horizon_days=90"
    assert manifest["parameters"]["cutoff"] is None
    lines = manifest["lines"]
    assert lines["read"] == lines["accepted"] + lines["rejected"]
    assert lines["rejected_by_reason"]["after_as_of"] > 0  # the lines after the cutoff
    labels = details["label_lines"]
    assert labels["read"] == lines["read"] == labels["accepted"] + labels["rejected"]
    assert "after_as_of" not in labels["rejected_by_reason"]  # the horizon ends at the log's end
    scored_run = details["current_lines"]  # the RFM run of the scored customers' rows
    assert scored_run == labels  # as of the latest purchase: the same lines as the label run
    assert len(read_parts(out)) > details["labelled_customers"]  # customers who joined after it


def test_early_warning_lists_high_value_customers_at_high_risk_by_value_at_risk(published):
    out, scored, _model, manifest = published
    warning = [
        json.loads(line, parse_constant=_no_nan) for line in (out / EARLY_WARNING_JSONL).open()
    ]
    assert len(warning) == manifest["details"]["early_warning"] > 0
    threshold = float(np.quantile(scored["value"], 0.8))
    assert manifest["details"]["value_threshold"] == threshold  # exact, from two ranks
    assert all(w["risk_tier"] == "high" and w["value"] >= threshold for w in warning)
    at_risk = [w["value_at_risk"] for w in warning]
    assert at_risk == sorted(at_risk, reverse=True)
    assert [w["rank"] for w in warning] == list(range(1, len(warning) + 1))
    expected = scored[(scored["risk_tier"] == "high") & (scored["value"] >= threshold)]
    assert sorted(w["customer_id"] for w in warning) == sorted(expected["customer_id"])
    csv = pd.read_csv(out / EARLY_WARNING_CSV, dtype={"customer_id": str})
    assert csv.columns[0] == "rank" and "drivers_text" in csv.columns
    assert csv["customer_id"].tolist() == [w["customer_id"] for w in warning]


def test_metrics_and_manifest_are_valid_json_and_the_model_beats_chance(published):
    out, _scored, model, manifest = published
    metrics = json.loads((out / METRICS_JSON).read_text(), parse_constant=_no_nan)
    json.loads((out / "_manifest.json").read_text(), parse_constant=_no_nan)
    assert metrics["chosen"] == model.chosen == manifest["details"]["chosen"]
    held_out = metrics["metrics"]
    assert 0.5 < held_out["roc_auc"] <= 1.0
    assert 0.0 < held_out["brier"] < 0.25  # better than a constant 0.5
    assert held_out == pytest.approx(manifest["details"]["metrics"])
    details = manifest["details"]
    for key in ("cutoff", "horizon_days", "horizon_end"):
        assert metrics[key] == metrics["info"][key] == details[key]
    assert sorted(manifest["outputs"]) == sorted(
        [
            SCORES_CSV,
            EARLY_WARNING_CSV,
            EARLY_WARNING_JSONL,
            METRICS_JSON,
            MODEL_FILE,
            HISTOGRAM_CSV,
            CURVES_CSV,
        ]
    )


def test_probability_histogram_counts_every_scored_customer_in_its_bin(published):
    out, scored, _model, _manifest = published
    histogram = pd.read_csv(out / HISTOGRAM_CSV)
    assert len(histogram) == 20 and histogram["count"].sum() == len(scored)
    expected = np.bincount(
        np.minimum((scored["churn_probability"].to_numpy() * 20).astype(int), 19), minlength=20
    )
    assert histogram["count"].tolist() == expected.tolist()


def test_curves_run_from_the_origin_to_one_one_and_stay_bounded(published):
    out = published[0]
    curves = pd.read_csv(out / CURVES_CSV)
    assert set(curves["curve"]) == {"roc_model", "roc_recency", "gain_model", "gain_recency"}
    for _name, curve in curves.groupby("curve"):
        assert len(curve) <= 101
        assert (curve.iloc[0]["x"], curve.iloc[0]["y"]) == (0.0, 0.0)
        assert (curve.iloc[-1]["x"], curve.iloc[-1]["y"]) == (1.0, 1.0)
        assert curve["y"].is_monotonic_increasing


def test_published_model_loads_and_gives_the_published_probabilities(current, published):
    out, scored, model, _manifest = published
    loaded = load_model(out / MODEL_FILE)
    assert loaded.chosen == model.chosen and loaded.info["cutoff"] == model.info["cutoff"]
    p = loaded.predict_proba(current)
    assert np.allclose(p, scored["churn_probability"], rtol=0, atol=1e-12)


def test_a_given_current_path_gives_the_same_scores_as_computing_the_rows(
    log, rfm_dir, current, published, tmp_path
):
    out = tmp_path / "churn"
    latest = max(r["last_purchase"][:10] for r in current)
    _parts, _model, manifest = run_churn_stage(
        [str(log)],
        str(out),
        schema=CANONICAL,
        horizon_days=90,
        current_path=str(rfm_dir),
        conf_paths=[],
    )
    assert read_parts(out) == read_parts(published[0])  # the same parts from the same rows
    for name in (EARLY_WARNING_JSONL, EARLY_WARNING_CSV, SCORES_CSV):
        assert (out / name).read_bytes() == (published[0] / name).read_bytes(), name
    assert manifest["lines"] == published[3]["lines"]
    assert manifest["details"]["current_lines"] is None  # no RFM run for the given rows
    assert (
        manifest["details"]["cutoff_rule"] == f"latest purchase date {latest} minus horizon_days=90"
    )


def test_as_of_moves_the_scoring_date_and_the_default_cutoff(log, current, tmp_path):
    latest = max(r["last_purchase"][:10] for r in current)
    as_of = days_before(latest, 120)
    _parts, model, manifest = run_churn_stage(
        [str(log)], str(tmp_path / "churn"), schema=CANONICAL, as_of=as_of, conf_paths=[]
    )
    scored = scores_of(tmp_path / "churn")
    assert manifest["details"]["scored_as_of"] == as_of
    assert model.info["cutoff"] == days_before(as_of, 90)
    assert model.info["horizon_end"] == as_of
    known = sorted(r["customer_id"] for r in current if r["first_purchase"][:10] <= as_of)
    assert scored["customer_id"].tolist() == known
    assert 0 < len(known) < len(current)  # customers who joined after as_of are not scored
    scored_run = manifest["details"]["current_lines"]
    assert scored_run["read"] == scored_run["accepted"] + scored_run["rejected"]
    assert scored_run["rejected_by_reason"]["after_as_of"] > 0  # the lines after as_of


def test_too_few_customers_raise_and_publish_nothing(tmp_path):
    data = tmp_path / "tiny.csv"
    data.write_text(
        "order_id,customer_id,timestamp,item_id,quantity,unit_price\n"
        "O1,C1,2024-01-01,I1,1,2.50\nO2,C2,2024-03-01,I1,1,2.50\nO3,C1,2024-06-01,I2,1,4.00\n"
    )
    out = tmp_path / "churn"
    with pytest.raises(
        TooFewCustomersError, match="1 customers bought again and 1 churned; each class needs"
    ):
        run_churn_stage([str(data)], str(out), schema=CANONICAL, horizon_days=30, conf_paths=[])
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [data]  # no staging directory left either


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"horizon_days": 0}, "horizon_days=0"),
        ({"horizon_days": 90.0}, "horizon_days=90.0"),
        ({"cutoff": "2024-13-01"}, "cutoff='2024-13-01'"),
        ({"as_of": "30/12/2024"}, "as_of='30/12/2024'"),
        ({"cutoff": "2024-06-01", "as_of": "2024-06-01"}, "cutoff='2024-06-01' should be before"),
        ({"value": "shoe_size"}, "value='shoe_size'"),
        ({"value": "last_purchase"}, "value='last_purchase'"),
        ({"value_quantile": 1.0}, "value_quantile=1.0"),
        ({"early_warning_limit": 0}, "early_warning_limit=0"),
        ({"top_drivers": -1}, "top_drivers=-1"),
        ({"top_drivers": 9}, "top_drivers=9 should be <= 8"),
        ({"seed": -1}, "seed=-1"),
        ({"churn_max_train": 0}, "churn_max_train=0 should be a positive integer"),
        ({"churn_max_train": 1.5}, "churn_max_train=1.5"),
        ({"horizon_days": 99999999}, "horizon_days=99999999 should be at most 3650"),
        ({"horizon_days": 3651}, "horizon_days=3651 should be at most 3650"),
        (
            {"cutoff": "9999-12-01", "horizon_days": 90},
            "cutoff='9999-12-01' plus horizon_days=90 ends after 9999-12-31",
        ),
    ],
)
def test_bad_arguments_are_refused_before_any_job_runs(log, tmp_path, no_jobs, kwargs, message):
    out = tmp_path / "churn"
    with pytest.raises(ValueError, match=message):
        run_churn_stage([str(log)], str(out), schema=CANONICAL, **kwargs)
    assert not out.exists()


def _write_rows(directory, rows):
    directory.mkdir()
    (directory / "part-00000").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return directory


@pytest.mark.parametrize(
    "change, kwargs, message",
    [
        (lambda rows: rows, {"value": "shoe_size"}, "value='shoe_size' is not a column"),
        (
            lambda rows: [{k: v for k, v in r.items() if k != "tenure_days"} for r in rows],
            {},
            r"lack the RFM columns \['tenure_days'\]",
        ),
        (lambda rows: [{"customer_id": "C1", "total_value": 1.0}], {}, "lack the RFM columns"),
        (lambda rows: rows, {"as_of": "2024-01-01"}, "as_of='2024-01-01' but the rows"),
        (lambda rows: rows, {"cutoff": "2099-01-01"}, "cutoff='2099-01-01' should be before"),
    ],
)
def test_bad_current_rows_are_refused_before_any_job_runs(
    log, current, tmp_path, no_jobs, change, kwargs, message
):
    given = _write_rows(tmp_path / "rfm", change(current))
    out = tmp_path / "churn"
    with pytest.raises(ValueError, match=message):
        run_churn_stage([str(log)], str(out), schema=CANONICAL, current_path=str(given), **kwargs)
    assert not out.exists()


def test_empty_current_rows_raise_too_few_customers(log, tmp_path, no_jobs):
    given = _write_rows(tmp_path / "rfm", [])
    with pytest.raises(TooFewCustomersError, match="no current customer"):
        run_churn_stage([str(log)], str(tmp_path / "c"), schema=CANONICAL, current_path=str(given))


def test_an_existing_output_is_refused_before_any_job_runs(log, tmp_path, no_jobs):
    out = tmp_path / "churn"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(PathExists):
        run_churn_stage([str(log)], str(out), schema=CANONICAL)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "mine"


def test_default_cutoff_before_year_1_is_refused_naming_the_date_and_horizon():
    assert models.churn_stage.default_cutoff("0001-04-01", 90) == "0001-01-01"
    with pytest.raises(ValueError, match="0001-03-01 minus horizon_days=90 falls before year 1"):
        models.churn_stage.default_cutoff("0001-03-01", 90)


def test_the_longest_horizon_passes_the_checks(log, tmp_path, no_jobs):
    with pytest.raises(AssertionError, match="a MapReduce job ran"):  # it got that far
        run_churn_stage([str(log)], str(tmp_path / "c"), schema=CANONICAL, horizon_days=3650)


def test_a_smaller_max_train_fits_on_exactly_the_sampled_customers_deterministically(
    log, rfm_dir, published, tmp_path
):
    runs = []
    for name in ("a", "b"):
        _parts, model, manifest = run_churn_stage(
            [str(log)],
            str(tmp_path / name),
            schema=CANONICAL,
            current_path=str(rfm_dir),
            churn_max_train=600,
            seed=3,
            conf_paths=[],
        )
        runs.append((model, manifest))
    (model, manifest), (again, _) = runs
    sample = manifest["details"]["training_sample"]
    population = published[3]["details"]["labelled_customers"]
    assert sample["population"] == population > 600
    assert sample["size"] == 600 == model.metrics["n_train"] + model.metrics["n_holdout"]
    assert sample["seed"] == 3 and sample["threshold"] is not None
    assert "smallest blake2b-64 key" in sample["rule"]
    labelled = build_churn_dataset(
        [str(log)], schema=CANONICAL, cutoff=manifest["details"]["cutoff"], horizon_days=90
    ).frame["customer_id"]
    smallest = set(sorted(labelled, key=lambda c: sample_key(c, 3))[:600])
    assert set(model.holdout["customer_id"]) <= smallest
    assert model.metadata() | {"timings": None} == again.metadata() | {"timings": None}
    assert (tmp_path / "a" / "part-00000").read_bytes() == (
        tmp_path / "b" / "part-00000"
    ).read_bytes()


def test_the_local_runner_publishes_what_the_inline_runner_does(log, published, tmp_path):
    out = tmp_path / "churn"
    run_churn_stage(
        [str(log)], str(out), schema=CANONICAL, horizon_days=90, runner="local", conf_paths=[]
    )
    inline = published[0]
    metrics = [json.loads((d / METRICS_JSON).read_text()) for d in (out, inline)]
    for m in metrics:
        m.pop("timings")
    assert metrics[0] == metrics[1]
    local_rows, inline_rows = (scores_of(d) for d in (out, inline))
    pd.testing.assert_frame_equal(
        local_rows.drop(columns="drivers"), inline_rows.drop(columns="drivers"), rtol=1e-12
    )
    warned = [
        [json.loads(line) for line in (d / EARLY_WARNING_JSONL).open()] for d in (out, inline)
    ]
    assert [w["customer_id"] for w in warned[0]] == [w["customer_id"] for w in warned[1]]
    manifests = [json.loads((d / "_manifest.json").read_text()) for d in (out, inline)]
    assert manifests[0]["lines"] == manifests[1]["lines"]
    assert manifests[0]["details"]["tiers"] == manifests[1]["details"]["tiers"]
