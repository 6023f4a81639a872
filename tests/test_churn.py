"""Churn modelling (models/churn.py): labels, no leakage, CDNOW, calibration, scoring, saving."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models import synthetic
from models.churn import (
    MODEL_FEATURES,
    TRUSTED_TYPES,
    ChurnModel,
    UntrustedModelError,
    build_churn_dataset,
    current_features,
    early_warning,
    feature_matrix,
    fit_churn_model,
    load_model,
    save_model,
    score_customers,
    top_decile_lift,
)
from models.rfm_stage import run_rfm_stage
from mr_jobs.records import PRESETS

CANONICAL = PRESETS["canonical"]
HEADER = "order_id,customer_id,timestamp,item_id,quantity,unit_price\n"

# cutoff 2023-03-31, horizon 30 days -> the label window is (2023-03-31, 2023-04-30]
SMALL_LOG = [
    "O1,A,2023-01-05T10:00:00,I1,1,10.00",
    "O2,A,2023-02-10T11:00:00,I2,2,5.00",
    "O3,A,2023-04-15T09:00:00,I1,1,10.00",  # A buys again inside the horizon: churned 0
    "O4,B,2023-03-31T23:59:59,I1,1,7.50",  # on the cutoff day: a feature line
    "O5,B,2023-05-10T12:00:00,I3,1,3.00",  # after the horizon: B churned 1
    "O6,C,2023-01-20T08:00:00,I2,3,4.00",  # C never comes back: churned 1
    "O7,D,2023-04-02T08:00:00,I1,1,9.00",  # D starts after the cutoff: not in the set
    "O8,E,2023-03-01T08:00:00,I3,1,20.00",
    "O9,E,2023-04-30T21:00:00,I3,1,20.00",  # the horizon's last day: E churned 0
]
# after the cutoff only: a huge purchase by C (inside the horizon) and one by A (after it)
LEAKY_LINES = [
    "O10,C,2023-04-01T10:00:00,I9,1000,999.99",
    "O11,A,2023-06-01T10:00:00,I9,500,999.99",
]


def _write(path, lines):
    path.write_text(HEADER + "".join(line + "\n" for line in lines))
    return path


def _dataset(path, cutoff="2023-03-31", horizon_days=30, **options):
    return build_churn_dataset(
        [str(path)],
        schema=CANONICAL,
        cutoff=cutoff,
        horizon_days=horizon_days,
        conf_paths=[],
        **options,
    )


# -- labels and leakage --------------------------------------------------------------------------


def test_labels_on_a_hand_made_log_follow_purchases_inside_the_horizon(tmp_path):
    data = _dataset(_write(tmp_path / "log.csv", SMALL_LOG))
    frame = data.frame.set_index("customer_id")
    assert list(frame.index) == ["A", "B", "C", "E"]  # D first bought after the cutoff
    assert frame["churned"].to_dict() == {"A": 0, "B": 1, "C": 1, "E": 0}
    assert frame["orders_in_horizon"].to_dict() == {"A": 1, "B": 0, "C": 0, "E": 1}
    assert frame["value_in_horizon"].to_dict() == {"A": 10.0, "B": 0.0, "C": 0.0, "E": 20.0}
    # features see the lines up to and including the cutoff day
    assert frame.loc["B", "last_purchase"] == "2023-03-31T23:59:59"
    assert frame.loc["A", "orders"] == 2 and frame.loc["A", "total_value"] == 20.0
    assert (
        frame.loc["A", "recency_days"]
        == (pd.Timestamp("2023-03-31") - pd.Timestamp("2023-02-10")).days
    )
    assert set(frame["as_of"]) == {"2023-03-31"}
    assert (data.cutoff, data.horizon_days, data.horizon_end) == ("2023-03-31", 30, "2023-04-30")
    # the feature run rejected the 4 lines after the cutoff, the label run only B's May line
    assert data.lines["features"]["rejected_by_reason"] == {"after_as_of": 4, "header": 1}
    assert data.lines["labels"]["rejected_by_reason"] == {"after_as_of": 1, "header": 1}
    for lines in data.lines.values():
        assert lines["read"] == len(SMALL_LOG) + 1 == lines["accepted"] + lines["rejected"]


def test_features_are_byte_identical_whatever_happens_after_the_cutoff(tmp_path):
    clean = _dataset(_write(tmp_path / "clean.csv", SMALL_LOG))
    leaky = _dataset(_write(tmp_path / "leaky.csv", SMALL_LOG + LEAKY_LINES))
    as_text = [json.dumps(r, sort_keys=True) for r in clean.feature_rows]
    assert [json.dumps(r, sort_keys=True) for r in leaky.feature_rows] == as_text
    columns = [
        c
        for c in clean.frame.columns
        if c not in ("churned", "orders_in_horizon", "value_in_horizon", "purchase_days_in_horizon")
    ]
    assert leaky.frame[columns].to_csv().encode() == clean.frame[columns].to_csv().encode()
    assert feature_matrix(leaky.frame).equals(feature_matrix(clean.frame))
    # the added lines were seen and rejected by the feature run, and they do move the labels
    assert leaky.lines["features"]["rejected_by_reason"]["after_as_of"] == 4 + len(LEAKY_LINES)
    assert clean.frame.set_index("customer_id").loc["C", "churned"] == 1
    leaky_c = leaky.frame.set_index("customer_id").loc["C"]
    assert leaky_c["churned"] == 0 and leaky_c["value_in_horizon"] == pytest.approx(999_990.0)


def test_a_log_that_ends_before_the_horizon_end_warns(tmp_path):
    path = _write(tmp_path / "log.csv", SMALL_LOG)
    with pytest.warns(UserWarning, match=r"before the horizon end 2023-05-30"):
        _dataset(path, horizon_days=60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _dataset(path, horizon_days=30)  # data continues after 2023-04-30: no warning


def test_one_pass_features_equal_the_rfm_rows_as_of_the_cutoff(tmp_path):
    path = _write(tmp_path / "log.csv", SMALL_LOG + LEAKY_LINES)
    data = _dataset(path)
    out = tmp_path / "rfm"
    manifest = run_rfm_stage([str(path)], str(out), schema=CANONICAL, as_of="2023-03-31")
    rfm_rows = [json.loads(line) for part in sorted(out.glob("part-*")) for line in part.open()]
    assert data.feature_rows == sorted(rfm_rows, key=lambda r: r["customer_id"])
    assert data.lines["features"] == manifest["lines"]  # the RFM run to the cutoff's lines


# -- bad parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cutoff": "2023-02-30"}, r"cutoff='2023-02-30' should be an ISO date"),
        ({"cutoff": "20230101"}, r"cutoff='20230101'"),
        ({"cutoff": None}, r"cutoff=None"),
        ({"horizon_days": 0}, r"horizon_days=0 should be a positive integer"),
        ({"horizon_days": -7}, r"horizon_days=-7 should be a positive integer"),
        ({"horizon_days": 1.5}, r"horizon_days=1.5 should be a positive integer"),
        ({"horizon_days": True}, r"horizon_days=True"),
    ],
)
def test_build_churn_dataset_refuses_bad_dates_and_horizons(tmp_path, options, message):
    path = _write(tmp_path / "log.csv", SMALL_LOG)
    kwargs = {"cutoff": "2023-03-31", "horizon_days": 30, **options}
    with pytest.raises(ValueError, match=message):
        build_churn_dataset([str(path)], schema=CANONICAL, conf_paths=[], **kwargs)


def test_build_churn_dataset_refuses_a_bare_path_string(tmp_path):
    with pytest.raises(ValueError, match=r"input_paths='log.csv' should be a non-empty list"):
        build_churn_dataset("log.csv", schema=CANONICAL, cutoff="2023-03-31", horizon_days=30)
    with pytest.raises(ValueError, match=r"as_of='yesterday'"):
        current_features(["log.csv"], schema=CANONICAL, as_of="yesterday")


def _toy_frame(n=400, seed=0):
    rng = np.random.default_rng(seed)
    recency = rng.integers(0, 300, n)
    tenure = recency + rng.integers(0, 300, n)
    days = 1 + rng.poisson(2, n)
    churned = (rng.random(n) < recency / 300).astype(int)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "recency_days": recency,
            "tenure_days": tenure,
            "purchase_days": days,
            "orders": days,
            "total_value": days * 20.0,
            "mean_order_value": np.full(n, 20.0),
            "monetary_value": np.where(days > 1, 20.0, 0.0),
            "churned": churned,
        }
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cv_folds": 1}, r"cv_folds=1 should be an integer >= 2"),
        ({"test_size": 1.0}, r"test_size=1.0 should be a float in \(0, 1\)"),
        ({"test_size": 0}, r"test_size=0"),
        ({"calibration": "beta"}, r"calibration='beta'"),
        ({"seed": -1}, r"seed=-1 should be a non-negative integer"),
        ({"tiers": {"high": 0.3, "medium": 0.5}}, r"0 < medium <= high < 1"),
    ],
)
def test_fit_churn_model_refuses_bad_parameters(options, message):
    with pytest.raises(ValueError, match=message):
        fit_churn_model(_toy_frame(), **options)


def test_fit_churn_model_refuses_one_class_and_too_few_customers():
    frame = _toy_frame()
    with pytest.raises(ValueError, match=r"0 customers bought again and 400 churned"):
        fit_churn_model(frame.assign(churned=1))
    with pytest.raises(ValueError, match=r"each class needs >= 11 for cv_folds=5"):
        fit_churn_model(frame.head(12))
    with pytest.raises(ValueError, match=r"churned should be 0 or 1"):
        fit_churn_model(frame.assign(churned=2))
    with pytest.raises(ValueError, match=r"no 'churned' column"):
        fit_churn_model(frame.drop(columns="churned"))
    with pytest.raises(ValueError, match=r"lack the RFM columns \['monetary_value'\]"):
        feature_matrix(frame.drop(columns="monetary_value"))


def test_scoring_refuses_bad_parameters():
    frame = _toy_frame()
    model = fit_churn_model(frame, cv_folds=3)
    with pytest.raises(ValueError, match=r"value='profit' is not a column"):
        score_customers(model, frame, value="profit")
    with pytest.raises(ValueError, match=r"top_drivers=-1 should be in \[0, 8\]"):
        score_customers(model, frame, top_drivers=-1)
    scored = score_customers(model, frame, top_drivers=0)
    assert "drivers" not in scored.columns
    with pytest.raises(ValueError, match=r"value_quantile=1.0 should be a float in \[0, 1\)"):
        early_warning(scored, value_quantile=1.0)
    with pytest.raises(ValueError, match=r"limit=0 should be a positive integer"):
        early_warning(scored, limit=0)


def test_top_decile_lift_on_a_hand_computed_case():
    y = [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # base rate 0.15
    scores = np.linspace(1.0, 0.0, 20)  # the top decile is the first two: both churned
    assert top_decile_lift(y, scores) == pytest.approx(1.0 / 0.15)
    assert np.isnan(top_decile_lift([0, 0], [0.1, 0.2]))


# -- CDNOW, classic split ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow_churn(cdnow_path):
    """Features to 1997-09-30, labels over the next 39 weeks, a seeded model, and the
    customers as of the log's last day."""
    data = build_churn_dataset(
        [str(cdnow_path)],
        schema=PRESETS["cdnow"],
        cutoff="1997-09-30",
        horizon_days=39 * 7,
        conf_paths=[],
    )
    model = fit_churn_model(data.frame, seed=0, info={"cutoff": data.cutoff, "horizon_days": 273})
    current, manifest = current_features([str(cdnow_path)], schema=PRESETS["cdnow"], conf_paths=[])
    return data, model, current, manifest


def test_cdnow_classic_split_labels_and_line_accounting(cdnow_churn):
    data, _, _, _ = cdnow_churn
    assert data.horizon_end == "1998-06-30"  # 39 weeks after the calibration period
    assert len(data.frame) == 23_570  # every CDNOW customer first bought in Q1 1997
    lines = data.lines
    assert lines["labels"]["rejected_by_reason"] == {"header": 1}  # the log ends on 1998-06-30
    assert lines["features"]["rejected_by_reason"]["after_as_of"] == 20_573
    churn_rate = data.frame["churned"].mean()
    assert 0.65 < churn_rate < 0.75, churn_rate


def test_cdnow_model_beats_the_recency_only_rule_on_the_held_out_customers(cdnow_churn):
    _, model, _, _ = cdnow_churn
    holdout = model.holdout
    model_auc = roc_auc_score(holdout["churned"], holdout["churn_probability"])
    recency_auc = roc_auc_score(holdout["churned"], holdout["recency_days"])
    m = model.metrics
    cv_means = {k: round(float(np.mean(v)), 4) for k, v in model.cv_scores.items()}
    report = (
        f"{model.chosen}: held-out ROC-AUC {model_auc:.4f} vs recency-only {recency_auc:.4f}; "
        f"PR-AUC {m['pr_auc']:.4f}, Brier {m['brier']:.4f}, top-decile lift "
        f"{m['top_decile_lift']:.3f}, base rate {m['base_rate']:.3f}, n={m['n_holdout']}; "
        f"CV mean ROC-AUC {cv_means}"
    )
    assert model_auc == pytest.approx(m["roc_auc"]) and recency_auc == m["recency_only_roc_auc"]
    assert model_auc > recency_auc + 0.005, report
    assert model_auc > 0.74, report
    assert m["top_decile_lift"] > 1.15, report
    assert m["n_holdout"] == 5893 and m["n_train"] == 17_677, report  # ceil(25 %) held out
    chosen_cv = np.mean(model.cv_scores[model.chosen])
    assert all(chosen_cv >= np.mean(v) for v in model.cv_scores.values()), report
    print(report)


def test_cdnow_probabilities_are_calibrated(cdnow_churn):
    _, model, _, _ = cdnow_churn
    m, holdout = model.metrics, model.holdout
    p, y = holdout["churn_probability"].to_numpy(), holdout["churned"].to_numpy()
    assert model.calibration == "isotonic"  # 17,677 training customers
    assert ((p >= 0) & (p <= 1)).all()
    assert abs(p.mean() - m["base_rate"]) < 0.02, (p.mean(), m["base_rate"])
    assert m["brier"] <= m["brier_uncalibrated"] + 0.002, m
    # reliability: in each fifth of the probabilities the churn rate is near the mean forecast
    order = np.argsort(p, kind="stable")
    for chunk in np.array_split(order, 5):
        assert abs(y[chunk].mean() - p[chunk].mean()) < 0.06, (y[chunk].mean(), p[chunk].mean())


def test_cdnow_scoring_tiers_value_at_risk_and_drivers(cdnow_churn):
    _, model, current, manifest = cdnow_churn
    assert manifest["details"]["as_of"] == "1998-06-30"
    scored = score_customers(model, current)
    assert len(scored) == len(current) == 23_570
    assert list(scored["customer_id"]) == list(current["customer_id"])
    p = scored["churn_probability"].to_numpy()
    expected_tier = np.where(p >= 0.7, "high", np.where(p >= 0.4, "medium", "low"))
    assert (scored["risk_tier"].to_numpy() == expected_tier).all()
    assert set(scored["risk_tier"]) == {"high", "medium", "low"}
    assert np.array_equal(scored["value"], current["total_value"].to_numpy(dtype=float))
    assert np.allclose(scored["value_at_risk"], p * scored["value"], rtol=0, atol=1e-9)
    for drivers in scored["drivers"]:
        assert len(drivers) <= 3
        effects = [d["effect"] for d in drivers]
        assert all(e > 0 for e in effects) and effects == sorted(effects, reverse=True)
        assert all(d["feature"] in MODEL_FEATURES for d in drivers)
    # a customer silent for a year and a half is high risk with recency among the drivers
    silent = scored[scored["recency_days"] >= 500]
    assert (silent["risk_tier"] == "high").all()
    assert all("recency_days" in {d["feature"] for d in ds} for ds in silent["drivers"])
    other = score_customers(model, current.head(50), value="monetary_value", top_drivers=1)
    assert np.allclose(other["value"], current["monetary_value"].head(50))
    assert other["drivers"].map(len).max() <= 1


def test_cdnow_early_warning_lists_only_high_value_high_risk_customers(cdnow_churn):
    _, model, current, _ = cdnow_churn
    scored = score_customers(model, current)
    warning = early_warning(scored)
    threshold = np.quantile(scored["value"], 0.8)
    assert len(warning) > 50
    assert (warning["value"] >= threshold).all() and (warning["risk_tier"] == "high").all()
    assert (warning["value_threshold"] == threshold).all()
    assert list(warning["rank"]) == list(range(1, len(warning) + 1))
    at_risk = warning["value_at_risk"].to_numpy()
    assert (np.diff(at_risk) <= 0).all()
    expected = set(
        scored.loc[(scored["value"] >= threshold) & (scored["risk_tier"] == "high"), "customer_id"]
    )
    assert set(warning["customer_id"]) == expected
    assert warning["drivers"].map(len).min() >= 1  # every listed customer has a reason
    assert warning["drivers_text"].str.len().min() > 0
    assert len(early_warning(scored, limit=10)) == 10
    stricter = early_warning(scored, value_quantile=0.95, min_probability=0.9)
    assert set(stricter["customer_id"]) <= set(warning["customer_id"])


# -- persistence ---------------------------------------------------------------------------------


def test_save_and_load_round_trip_gives_the_same_scores(cdnow_churn, tmp_path):
    _, model, current, _ = cdnow_churn
    path = tmp_path / "churn.skops"
    save_model(model, path)
    loaded = load_model(path)
    assert isinstance(loaded, ChurnModel) and loaded.holdout is None
    assert loaded.metadata() == json.loads(json.dumps(model.metadata()))
    before = score_customers(model, current.head(2000))
    after = score_customers(loaded, current.head(2000))
    pd.testing.assert_frame_equal(before, after)
    assert path.read_bytes()[:2] == b"PK"  # a skops zip, not a pickle stream


def test_load_model_refuses_types_outside_the_trust_boundary(tmp_path):
    import skops.io as sio
    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(random_state=0).fit([[0], [1]], [0, 1])
    path = tmp_path / "other.skops"
    sio.dump({"format": "crm-mapreduce churn model 1", "estimator": tree, "metadata": "{}"}, path)
    with pytest.raises(UntrustedModelError, match=r"sklearn\.tree\._tree\.Tree"):
        load_model(path)
    assert "sklearn.tree._tree.Tree" not in TRUSTED_TYPES
    sio.dump({"format": "something else"}, tmp_path / "plain.skops")
    with pytest.raises(ValueError, match=r"not a churn model file"):
        load_model(tmp_path / "plain.skops")


# -- the built-in synthetic data -----------------------------------------------------------------


def test_synthetic_planted_churn_is_learned_well_above_chance(tmp_path):
    path = tmp_path / "synthetic.csv"
    truth = synthetic.generate(path, customers=2500, seed=7)
    assert truth["end"] == "2024-12-30"
    data = _dataset(path, cutoff="2024-06-30", horizon_days=180)
    model = fit_churn_model(data.frame, seed=0)
    planted = {}
    with open(synthetic.customers_truth_path(path)) as fh:
        for line in fh:
            row = json.loads(line)
            planted[row["customer_id"]] = row["churn_date"]
    holdout = model.holdout
    gone = np.array(
        [planted[c] is not None and planted[c] <= data.cutoff for c in holdout["customer_id"]]
    )
    truth_auc = roc_auc_score(gone, holdout["churn_probability"])
    m = model.metrics
    report = (
        f"synthetic: {model.chosen} held-out ROC-AUC {m['roc_auc']:.4f} (recency-only "
        f"{m['recency_only_roc_auc']:.4f}), against the planted churn before the cutoff "
        f"{truth_auc:.4f}; PR-AUC {m['pr_auc']:.4f}, Brier {m['brier']:.4f}, lift "
        f"{m['top_decile_lift']:.3f}, n={m['n_holdout']}"
    )
    assert m["roc_auc"] > 0.8, report
    assert truth_auc > 0.8, report
    print(report)


@pytest.mark.parametrize(
    "ids",
    [
        ["C3", "C1", "C20", "C2"],
        ["é", "a", "Z", "ß"],
        ["a\x00", "a", "b\x00c", "b"],  # numpy's fixed width would drop a trailing NUL
        ["x" * 5000, "y", "x" * 4999],  # longer than the fixed width: Python strings
    ],
)
@pytest.mark.parametrize("chunk_rows", [2, 65_536])
def test_training_frame_keeps_every_id_exactly_in_python_order(ids, chunk_rows, monkeypatch):
    from models import churn
    from models.churn import _TRAINING_COLUMNS, _compact_frame

    monkeypatch.setattr(churn, "_CHUNK_ROWS", chunk_rows)  # 2: chunks of both kinds joined

    rows = [
        {c: (i if c != "customer_id" else cid) for c in _TRAINING_COLUMNS}
        for i, cid in enumerate(ids)
    ]
    frame = _compact_frame(iter(rows), _TRAINING_COLUMNS)
    assert frame["customer_id"].tolist() == sorted(ids)
    # the other columns travel with their id
    by_id = {cid: i for i, cid in enumerate(ids)}
    assert frame["orders"].tolist() == [float(by_id[c]) for c in sorted(ids)]
    assert frame["churned"].dtype == np.int64
