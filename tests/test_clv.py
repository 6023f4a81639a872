"""Customer lifetime value (models/clv.py, mr_jobs/clv_*.py, models/clv_stage.py): the fits
against the published CDNOW estimates, the expectations against lifetimes and by hand, the
holdout table, the bad cases, and the runners."""

import json
import math
from pathlib import Path

import lifetimes  # a test dependency (setup.cfg [test]): missing, the suite fails
import numpy as np
import pandas as pd
import pytest

from models.cli import main
from models.clv import (
    ModelNotIdentifiedError,
    bgnbd_log_likelihood,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
)
from models.clv_stage import check_options, run_clv_stage
from mr_jobs.clv_math import clv_factor, expected_purchases, expected_value, p_alive
from mr_jobs.records import PRESETS, InputSchema

DATASETS = Path(lifetimes.__file__).parent / "datasets"
CDNOW_SAMPLE = DATASETS / "CDNOW_sample.txt"
#: CDNOW_sample.txt: customer id, id in the master file, date, CDs, dollars (no header).
SAMPLE_SCHEMA = InputSchema(
    ("customer_id", "master_id", "date", "number_of_cds", "dollar_value"),
    {"timestamp": "date", "quantity": "number_of_cds", "amount": "dollar_value"},
    delimiter=PRESETS["cdnow"].delimiter,
    timestamp_format="%Y%m%d",
)
CALIBRATION_END, HOLDOUT_END = "1997-09-30", "1998-06-30"  # 39 + 39 weeks
#: Fader, Hardie and Lee (2005), time in weeks.
PUBLISHED_BGNBD = {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259}
PUBLISHED_LL = -9582.43
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}


def _significant(value, digits=3):
    return float(f"{value:.{digits}g}")


def _read_parts(directory):
    return [json.loads(line) for p in sorted(directory.glob("part-*")) for line in p.open()]


@pytest.fixture(scope="module")
def cdnow_clv(tmp_path_factory):
    """The stage on the CDNOW sample with the classic calibration and holdout, CLV over 360
    days (12 months of 30: lifetimes' ``customer_lifetime_value(time=12, freq="D")``)."""
    out = tmp_path_factory.mktemp("clv") / "clv"
    manifest = run_clv_stage(
        [str(CDNOW_SAMPLE)],
        str(out),
        schema=SAMPLE_SCHEMA,
        as_of=CALIBRATION_END,
        holdout_end=HOLDOUT_END,
        horizon_days=360,
        conf_paths=[],
    )
    return out, manifest


# -- the fits ------------------------------------------------------------------------------


def test_bgnbd_on_the_cdnow_summary_gives_the_published_estimates_to_three_digits():
    from lifetimes.datasets import load_cdnow_summary

    summary = load_cdnow_summary()
    grouped = summary.groupby(["frequency", "recency", "T"]).size().reset_index(name="n")
    fit = fit_bgnbd(grouped["frequency"], grouped["recency"], grouped["T"], grouped["n"])
    for name, value in PUBLISHED_BGNBD.items():
        assert _significant(fit["parameters"][name]) == _significant(value), name
    assert round(fit["log_likelihood"], 2) == PUBLISHED_LL
    assert fit["converged"] and fit["data"]["customers"] == 2357
    assert fit["data"]["distinct_triples"] < 2357  # the fit ran on compressed statistics
    assert all(
        0 < e < v
        for e, v in zip(fit["standard_errors"].values(), PUBLISHED_BGNBD.values(), strict=True)
    )


def test_stage_on_the_cdnow_sample_gives_the_published_estimates_in_weeks(cdnow_clv):
    out, manifest = cdnow_clv
    model = json.loads((out / "model.json").read_text())
    assert model["time_unit"] == "days"
    bgnbd = model["bgnbd"]["parameters"]
    in_weeks = {**bgnbd, "alpha": bgnbd["alpha"] / 7}
    for name, value in PUBLISHED_BGNBD.items():
        assert _significant(in_weeks[name]) == _significant(value), name
    # days instead of weeks scale each repeat purchase's density by 1/7
    repeats = model["bgnbd"]["data"]["repeat_purchases"]
    assert round(model["bgnbd"]["log_likelihood"] + math.log(7) * repeats, 2) == PUBLISHED_LL
    gamma_gamma = model["gamma_gamma"]["parameters"]
    for name, value in PUBLISHED_GAMMA_GAMMA.items():
        # within 0.01 (lifetimes' own fit gives v = 15.4477 on its summary file)
        assert abs(gamma_gamma[name] - value) < 0.01, (name, gamma_gamma[name])
    assert manifest["details"]["customers"] == 2357 and manifest["rows_written"] == 2357
    assert manifest["lines"]["read"] == manifest["lines"]["accepted"] == 6919


def _lifetimes_summary():
    """lifetimes' own calibration/holdout rows of the CDNOW sample (days)."""
    from lifetimes.utils import calibration_and_holdout_data

    tx = pd.read_csv(CDNOW_SAMPLE, sep=r"\s+", header=None, names=["id", "m", "date", "q", "v"])
    tx["id"] = tx["id"].map(lambda i: f"{i:05d}")
    tx["date"] = pd.to_datetime(tx["date"].astype(str), format="%Y%m%d")
    return calibration_and_holdout_data(
        tx,
        "id",
        "date",
        calibration_period_end=CALIBRATION_END,
        observation_period_end=HOLDOUT_END,
        freq="D",
        monetary_value_col="v",
    )


def test_calibration_rows_and_holdout_equal_lifetimes_calibration_and_holdout_data(cdnow_clv):
    out, manifest = cdnow_clv
    ours = pd.DataFrame(_read_parts(out)).set_index("customer_id").sort_index()
    theirs = _lifetimes_summary().sort_index()
    assert list(ours.index) == list(theirs.index)
    for mine, other in (
        ("frequency", "frequency_cal"),
        ("recency", "recency_cal"),
        ("T", "T_cal"),
    ):
        assert (ours[mine].to_numpy() == theirs[other].to_numpy()).all(), mine
    np.testing.assert_allclose(ours["monetary_value"], theirs["monetary_value_cal"], rtol=1e-12)
    holdout = pd.read_csv(out / "holdout.csv").set_index("frequency")
    assert holdout.loc["all", "actual_purchases"] == theirs["frequency_holdout"].sum()
    assert manifest["details"]["holdout"]["actual_purchases"] == theirs["frequency_holdout"].sum()


def test_customer_expectations_equal_lifetimes_with_the_same_parameters(cdnow_clv):
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    out, _ = cdnow_clv
    model = json.loads((out / "model.json").read_text())
    rows = pd.read_csv(out / "customers.csv", dtype={"customer_id": str})
    bgf = BetaGeoFitter()
    bgf.params_ = pd.Series(model["bgnbd"]["parameters"])[["r", "alpha", "a", "b"]]
    ggf = GammaGammaFitter()
    ggf.params_ = pd.Series(model["gamma_gamma"]["parameters"])[["p", "q", "v"]]
    x, t_x, T, m = (rows[c] for c in ("frequency", "recency", "T", "monetary_value"))
    np.testing.assert_allclose(
        rows["p_alive"], bgf.conditional_probability_alive(x, t_x, T), rtol=1e-12
    )
    their_purchases = bgf.conditional_expected_number_of_purchases_up_to_time(360, x, t_x, T)
    np.testing.assert_allclose(rows["expected_purchases"], their_purchases, rtol=1e-10)
    value = ggf.conditional_expected_average_profit(x, m)
    np.testing.assert_allclose(rows["expected_value"], value, rtol=1e-12)
    bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time  # set by fit()
    clv = ggf.customer_lifetime_value(bgf, x, t_x, T, m, time=12, discount_rate=0.01, freq="D")
    np.testing.assert_allclose(rows["clv"], clv.to_numpy(), rtol=1e-10)
    assert (rows.loc[rows["frequency"] == 0, "p_alive"] == 1.0).all()


def test_lifetimes_own_fit_on_the_same_rows_agrees_with_ours(cdnow_clv):
    from lifetimes import BetaGeoFitter

    out, _ = cdnow_clv
    model = json.loads((out / "model.json").read_text())
    rows = pd.read_csv(out / "customers.csv")
    bgf = BetaGeoFitter().fit(rows["frequency"], rows["recency"], rows["T"])
    for name, value in model["bgnbd"]["parameters"].items():
        assert value == pytest.approx(bgf.params_[name], rel=2e-3), name


def test_holdout_table_follows_the_paper_and_beats_the_recency_rule(cdnow_clv):
    out, manifest = cdnow_clv
    table = pd.read_csv(out / "holdout.csv")
    assert list(table["frequency"]) == ["0", "1", "2", "3", "4", "5", "6", "7+", "all"]
    assert table["customers"].iloc[:-1].sum() == table["customers"].iloc[-1] == 2357
    assert table["actual_purchases"].iloc[:-1].sum() == table["actual_purchases"].iloc[-1]
    # the paper's pattern: the mean holdout purchases grow with the calibration frequency
    # and the model follows them within a third, for every frequency
    assert table["actual_mean"].iloc[:8].is_monotonic_increasing
    ratio = table["predicted_mean"].iloc[:8] / table["actual_mean"].iloc[:8]
    assert ((ratio > 0.66) & (ratio < 1.33)).all(), ratio.tolist()
    summary = manifest["details"]["holdout"]
    assert summary["holdout_days"] == 273 and summary["mae"] < summary["recency_rule_mae"]
    assert 0.5 < summary["recency_only_roc_auc"] <= summary["roc_auc"] < 1.0


# -- by hand -------------------------------------------------------------------------------


def test_log_likelihoods_by_hand():
    ones = np.ones(1)
    # x = 0: ll = r ln(alpha / (alpha + T))
    ll = bgnbd_log_likelihood((1.0, 2.0, 1.0, 1.0), 0 * ones, 0 * ones, 3 * ones, ones)
    assert ll == pytest.approx(math.log(2 / 5))
    # x = 1, t_x = 1, T = 2, all parameters 1: -ln 2 + ln(1/9 + 1/4) = ln(13/72)
    ll = bgnbd_log_likelihood((1.0, 1.0, 1.0, 1.0), ones, ones, 2 * ones, ones)
    assert ll == pytest.approx(math.log(13 / 72))
    # counts weigh a triple as that many customers
    assert bgnbd_log_likelihood((1.0, 1.0, 1.0, 1.0), ones, ones, 2 * ones, 3 * ones) == (
        pytest.approx(3 * math.log(13 / 72))
    )
    # Gamma-Gamma, p = q = v = 1, x = 1, m = 1: ln G(2) - 2 ln G(1) + 0 - 2 ln 2 = -2 ln 2
    assert gamma_gamma_log_likelihood((1.0, 1.0, 1.0), ones, ones, ones) == pytest.approx(
        -2 * math.log(2)
    )


def test_expectations_by_hand():
    params = (1.0, 1.0, 2.0, 1.0)  # r, alpha, a, b
    assert p_alive(params, 0, 0.0, 5.0) == 1.0
    # x = 1, t_x = 1, T = 3: 1 / (1 + a / b ((alpha + T) / (alpha + t_x))^(r + x)) = 1/9
    assert p_alive(params, 1, 1.0, 3.0) == pytest.approx(1 / 9)
    # x = 0, T = 1, t = 2: z = 1/2, 2F1(1, 1; 2; z) = -ln(1 - z) / z = 2 ln 2,
    # E = (a + b - 1)/(a - 1) (1 - 2 ln 2 x (2/4)) = 2 (1 - ln 2)
    assert expected_purchases(params, 2.0, 0, 0.0, 1.0) == pytest.approx(2 * (1 - math.log(2)))
    assert expected_purchases(params, 0.0, 3, 2.0, 5.0) == 0.0
    # Gamma-Gamma: the population mean v p / (q - 1) without repeats; the weight p x / (p x
    # + q - 1) on the customer's own mean otherwise
    assert expected_value((2.0, 3.0, 10.0), 0, 0.0) == 10.0
    assert expected_value((2.0, 3.0, 10.0), 1, 40.0) == pytest.approx(0.5 * 10 + 0.5 * 40)
    # one month, no discount: the factor is the expected purchases; a 10% monthly rate
    # divides a one-month horizon's purchases by 1.1
    purchases, factor = clv_factor(params, 30, 0.0, 2, 10.0, 20.0)
    assert factor == purchases == pytest.approx(expected_purchases(params, 30.0, 2, 10.0, 20.0))
    assert clv_factor(params, 30, 0.1, 2, 10.0, 20.0)[1] == pytest.approx(purchases / 1.1)
    # a last month of 5 days is discounted by its end: 35 days = 30 + 5
    e30 = expected_purchases(params, 30.0, 2, 10.0, 20.0)
    e35 = expected_purchases(params, 35.0, 2, 10.0, 20.0)
    assert clv_factor(params, 35, 0.1, 2, 10.0, 20.0)[1] == pytest.approx(
        e30 / 1.1 + (e35 - e30) / 1.1 ** (35 / 30)
    )


def test_expected_purchases_of_a_heavy_buyer_stay_finite():
    """A frequency where 2F1 overflows takes Euler's transformation (as lifetimes does)."""
    params = (0.25, 4.4 * 7, 0.79, 2.43)
    value = expected_purchases(params, 365.0, 400, 500.0, 510.0)
    assert math.isfinite(value) and 0 < value < 365


# -- what cannot be fitted, and bad options ------------------------------------------------


def test_no_repeat_buyer_is_a_clear_error_from_the_fit_and_the_command(tmp_path, capsys):
    with pytest.raises(ModelNotIdentifiedError, match="none of the 3 customers bought again"):
        fit_bgnbd([0, 0], [0, 0], [5, 9], [1, 2])
    with pytest.raises(ModelNotIdentifiedError, match="2 distinct"):
        fit_gamma_gamma([1], [10.0], [5])
    log = tmp_path / "one_visit_each.csv"
    log.write_text(
        "order_id,customer_id,timestamp,item_id,quantity,unit_price\n"
        "O1,A,2023-01-02T10:00:00,I1,1,1.50\n"
        "O2,B,2023-01-05T10:00:00,I1,1,2.50\n"
    )
    assert main(["clv", str(log), "-o", str(tmp_path / "out"), "--no-mrjob-conf"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "none of the 2 customers bought again" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"horizon_days": 0}, "horizon_days=0"),
        ({"horizon_days": 4000}, "horizon_days=4000"),
        ({"discount_rate": -0.1}, "discount_rate=-0.1"),
        ({"discount_rate": "1%"}, "discount_rate='1%'"),
        ({"clv_max_train": 1}, "clv_max_train=1"),
        ({"holdout_end": "1998-01-01"}, "needs as_of"),
        ({"as_of": "1998-01-01", "holdout_end": "1997-12-31"}, "should be after as_of"),
        ({"as_of": "1998-02-30"}, "1998-02-30"),
    ],
)
def test_bad_options_are_refused_naming_the_value(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        check_options(**options)


def test_the_command_refuses_a_holdout_without_as_of_before_any_job(tmp_path, capsys):
    args = ["clv", str(CDNOW_SAMPLE), "-o", str(tmp_path / "o"), "--holdout-end", HOLDOUT_END]
    assert main(args) == 2
    assert "holdout_end='1998-06-30' needs as_of" in capsys.readouterr().err


# -- runners and the sample ----------------------------------------------------------------


def test_local_runner_and_a_bounded_sample_give_what_inline_gives(tmp_path):
    """The seeded sample (500 of 2,357 customers) sets Gamma-Gamma and the tiers; both
    runners pick the same customers and publish the same bytes."""
    found = {}
    for runner in ("inline", "local"):
        out = tmp_path / runner
        manifest = run_clv_stage(
            [str(CDNOW_SAMPLE)],
            str(out),
            schema=SAMPLE_SCHEMA,
            as_of=CALIBRATION_END,
            clv_max_train=500,
            seed=3,
            runner=runner,
            conf_paths=[],
        )
        lines = sorted(line for p in out.glob("part-*") for line in p.read_text().splitlines())
        found[runner] = (manifest, lines, (out / "model.json").read_bytes())
    (m_inline, rows_inline, model_inline), (m_local, rows_local, model_local) = (
        found["inline"],
        found["local"],
    )
    assert rows_local == rows_inline and model_local == model_inline
    sample = m_local["details"]["sample"]
    assert sample["size"] == 500 and sample["population"] == 2357 and sample["seed"] == 3
    assert "smallest blake2b-64 key" in sample["rule"]
    model = json.loads(model_local)
    assert model["gamma_gamma"]["data"]["customers"] < 500  # repeat buyers of the sample
    tiers = m_local["details"]["tiers"]
    assert sum(tiers.values()) == 2357 and tiers["high"] < tiers["medium"] < tiers["low"]
    assert m_local["lines"] == m_inline["lines"]


def test_holdout_summary_sets_the_churn_stages_held_out_auc_beside_its_own(tmp_path, cdnow_clv):
    from models.churn_stage import run_churn_stage

    churn = tmp_path / "churn"
    *_, churn_manifest = run_churn_stage(
        [str(CDNOW_SAMPLE)], str(churn), schema=SAMPLE_SCHEMA, horizon_days=273, conf_paths=[]
    )
    manifest = run_clv_stage(
        [str(CDNOW_SAMPLE)],
        str(tmp_path / "clv"),
        schema=SAMPLE_SCHEMA,
        as_of=CALIBRATION_END,
        holdout_end=HOLDOUT_END,
        churn_path=str(churn),
        conf_paths=[],
    )
    reference = manifest["details"]["holdout"]["churn_model"]
    assert reference["roc_auc"] == churn_manifest["details"]["metrics"]["roc_auc"]
    assert reference["horizon_days"] == 273 and "its own cutoff" in reference["note"]
    # without a published churn output there is nothing to set beside
    assert cdnow_clv[1]["details"]["holdout"]["churn_model"] is None


def test_a_fit_without_finite_expectations_is_refused_naming_the_parameters():
    """The fit found on the hostile corpus (every customer with frequency 2: r and alpha run
    to the Poisson limit), where 2F1 gives no finite value: a clear refusal, not NaN."""
    from models.clv_stage import _check_expectations

    found = {"r": 5.666e4, "alpha": 8.349e6, "a": 1.483e-4, "b": 1.129e4}
    triples = np.array([[2, 172, 221], [2, 197, 319]])
    settings = {"horizon_days": 365, "discount_rate": 0.01}
    with pytest.raises(ModelNotIdentifiedError, match=r"r=5\.666e\+04.*do not identify"):
        _check_expectations(found, triples, settings)
    cdnow = {"r": 0.2426, "alpha": 30.895, "a": 0.7929, "b": 2.4259}
    _check_expectations(cdnow, triples, settings)  # finite: no error
