"""The rolling-origin model choice (models/forecast_select.py) and its numpy candidates
(models/forecast_models.py) on series whose right model is known, CDNOW, and bad series."""

import numpy as np
import pandas as pd
import pytest

from models.forecast import _record, forecast_series
from models.forecast_models import (
    EtsBatch,
    OptimizedTheta,
    arima11,
    ets,
    is_seasonal,
    kpss_level,
    optimized_theta,
    theta,
)
from models.forecast_select import (
    MARGIN,
    ORIGINS,
    _batched_pool,
    _scores,
    _with_combination,
    select_and_forecast,
)
from tests.test_forecast import _revenue_by_period

H = 8
COMBINED_NAMES = ("Theta", "Optimized Theta")


def _select(y, period="W", start="2022-01-03", **kwargs):
    index = pd.date_range(start, periods=len(y), freq="7D" if period == "W" else "D")
    series = pd.Series(np.asarray(y, dtype=float), index=index)
    kwargs.setdefault("backtest_periods", H)
    return forecast_series({"s": series}, period=period, horizon=H, method="select", **kwargs)


def _final(result):
    fits = result.fits
    return fits[(fits["stage"] == "final")].iloc[0]


def test_a_pure_trend_is_extrapolated_not_repeated():
    y = 100 + 3.0 * np.arange(90)
    result = _select(y)
    final = _final(result)
    assert not final["model"].startswith("seasonal naive")
    expected = 100 + 3.0 * np.arange(90, 90 + H)
    np.testing.assert_allclose(result.forecasts["forecast"], expected, rtol=0.02)
    assert result.backtest.iloc[0]["relative_mae"] < 0.2
    scores = final["selection"]["scores"]
    assert scores["ETS(A,Ad,N)"] < scores["ETS(A,N,N)"]  # the trend model sees the trend


def test_a_pure_weekly_season_of_daily_series_is_followed():
    days = np.arange(84)
    y = 50 + 20 * np.sin(2 * np.pi * days / 7)
    result = _select(y, period="D")
    final = _final(result)
    seasonal = ("seasonal naive", "ETS(A,N,A)", "ETS(A,Ad,A)", "Theta (deseasonalised")
    assert final["model"].startswith(seasonal) or "(deseasonalised, lag 7)" in final["model"]
    truth = 50 + 20 * np.sin(2 * np.pi * np.arange(84, 84 + H) / 7)
    assert np.max(np.abs(result.forecasts["forecast"].to_numpy() - truth)) < 2.0


def test_white_noise_is_forecast_flat_near_its_mean():
    y = 200 + np.random.default_rng(3).normal(0, 10, 120)
    result = _select(y)
    forecast = result.forecasts["forecast"].to_numpy()
    assert np.ptp(forecast) < 15 and abs(forecast.mean() - 200) < 10
    upper, lower = result.forecasts["upper"], result.forecasts["lower"]
    assert ((upper - lower) > 20).all()  # the noise's width, not a false certainty


def test_intermittent_zeros_give_finite_nonnegative_forecasts():
    rng = np.random.default_rng(5)
    y = np.where(rng.random(100) < 0.7, 0.0, rng.integers(1, 6, 100).astype(float))
    result = _select(y)
    f = result.forecasts
    assert f[["forecast", "lower", "upper"]].notna().all().all()
    assert (f[["forecast", "lower", "upper"]] >= 0).all().all()
    assert _final(result)["status"] in ("ok", "fallback")


def test_a_series_no_model_can_forecast_is_reported_and_the_others_go_on():
    good = pd.Series(
        100 + np.arange(40, dtype=float), index=pd.date_range("2022-01-03", periods=40, freq="7D")
    )
    bad = good.copy()
    bad.iloc[5] = np.inf
    result = forecast_series(
        {"good": good, "bad": bad}, period="W", horizon=H, method="select", backtest_periods=0
    )
    assert result.failed() == ["bad"]
    assert set(result.forecasts["series"]) == {"good"}


def test_a_short_series_gets_no_choice_and_says_why():
    result = _select([5.0, 6.0, 7.0, 6.0, 5.0, 6.0], backtest_periods=0)
    final = _final(result)
    assert final["model"] == "ETS(A,N,N)" and "too short for a choice" in final["fallback"]


def test_the_choice_is_recorded_with_every_candidates_score():
    y = 100 + 3.0 * np.arange(90) + np.random.default_rng(0).normal(0, 2, 90)
    final = _final(_select(y))
    selection = final["selection"]
    assert selection["rule"].startswith("the combination unless")
    assert len(selection["origins"]) == ORIGINS and selection["horizon"] == H
    names = set(selection["scores"])
    expected = {"seasonal naive", "ETS(A,N,N)", "Theta", "Optimized Theta", "ARIMA"}
    assert expected | {"Theta on log1p", "combination"} <= names
    scored = {k: v for k, v in selection["scores"].items() if v is not None}
    chosen = min(scored, key=scored.get)
    if scored[chosen] > (1 - MARGIN) * scored["combination"]:
        chosen = "combination"
    assert final["model"].startswith(chosen.split(" on ")[0].split("(")[0])


def _fixed_pool(errors):
    """A pool whose candidates forecast ``0 + error`` at every origin."""
    return [(name, lambda end, steps, e=e: _constant(e, steps)) for name, e in errors.items()]


def _constant(value, steps):
    f = np.full(steps, float(value))
    return {"forecast": f, "lower": f - 1, "upper": f + 1}


@pytest.mark.parametrize(
    ("best", "expected"), [(0.95, "combination"), (0.76, "combination"), (0.74, "ETS(A,N,N)")]
)
def test_the_combination_is_replaced_only_by_a_clearly_lower_score(best, expected):
    values = np.zeros(40)
    pool = _fixed_pool({"seasonal naive": 3.0, "ETS(A,N,N)": best, "combination": 1.0})
    rec = {"candidates": 0, "errors": []}
    scores, ranked = _scores(pool, values, 4, [24, 28, 32], rec)
    assert scores["ETS(A,N,N)"] == pytest.approx(best) and MARGIN == 0.25
    assert ranked[0] == expected
    assert sorted(ranked[1:], key=scores.get) == ranked[1:]


def test_the_optimized_theta_of_a_prefix_equals_its_fit_alone():
    y = 50 + 0.8 * np.arange(70) + np.random.default_rng(4).normal(0, 5, 70)
    whole = OptimizedTheta(y)
    for end in (20, 45, 70):
        fit = whole.fit(end, 6)
        fit["parameters"]["seasonal"] = False  # optimized_theta() says it tested the season
        _assert_same_fit(fit, optimized_theta(y[:end], 6))


def test_the_optimized_theta_extrapolates_a_pure_trend_and_damps_noise():
    trend = optimized_theta(10 + 3.0 * np.arange(40), 5)
    np.testing.assert_allclose(trend["forecast"], 10 + 3.0 * np.arange(40, 45), rtol=1e-6)
    assert trend["parameters"]["drift_weight"] == pytest.approx(1.0)
    noise = np.random.default_rng(5).normal(100, 10, 200)
    flat = optimized_theta(noise, 5)
    assert np.ptp(flat["forecast"]) < 1.0 and abs(flat["forecast"][0] - 100) < 5
    assert np.all(np.diff(flat["upper"] - flat["lower"]) > 0)


def test_cdnow_weekly_backtest_beats_the_plain_naive(cdnow_path):
    raw = pd.read_csv(cdnow_path, sep=r"\s+", dtype={"customer_id": str, "date": str})
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(raw["date"], format="%Y%m%d"),
            "revenue": raw["dollar_value"].astype(float),
        }
    )
    weekly = _revenue_by_period(frame, "W")
    result = forecast_series(
        {"cdnow": weekly}, period="W", horizon=8, backtest_periods=8, method="select"
    )
    bt = result.backtest.iloc[0]
    y = weekly.to_numpy(dtype=float)
    plain_naive_mae = float(np.mean(np.abs(y[-9] - y[-8:])))
    assert bt["mae"] < plain_naive_mae, (bt["mae"], plain_naive_mae, bt["model"])


@pytest.mark.parametrize("trend", [False, True])
def test_ets_intervals_widen_and_contain_the_forecast(trend):
    y = 10 + np.cumsum(np.random.default_rng(1).normal(0.2, 1.0, 60))
    fit = ets(y, 12, trend=trend)
    width = fit["upper"] - fit["lower"]
    assert (np.diff(width) >= -1e-9).all() and (fit["lower"] < fit["forecast"]).all()
    assert 0.02 <= fit["parameters"]["alpha"] <= 0.98


def test_theta_deseasonalises_only_a_seasonal_series():
    t = np.arange(120)
    seasonal = 100 + 30 * np.sin(2 * np.pi * t / 12) + 0.5 * t
    flat = 100 + np.random.default_rng(2).normal(0, 1, 120)
    assert is_seasonal(seasonal, 12) and not is_seasonal(flat, 12)
    assert theta(seasonal, 12, m=12)["parameters"]["seasonal"]
    assert not theta(flat, 12, m=12)["parameters"]["seasonal"]
    with pytest.raises(ValueError, match="at least 3 values"):
        theta([1.0, 2.0], 4)


def _assert_same_fit(batched, reference):
    assert batched["parameters"] == reference["parameters"]
    assert batched["sse"] == pytest.approx(reference["sse"], rel=1e-9, abs=1e-12)
    for key in ("forecast", "lower", "upper"):
        np.testing.assert_allclose(batched[key], reference[key], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("m", [None, 7])
def test_the_batched_ets_fits_equal_ets_on_each_prefix(m):
    y = 50 + np.cumsum(np.random.default_rng(4).normal(0.3, 2.0, 90))
    if m:
        y = y + 10 * np.sin(2 * np.pi * np.arange(90) / m)
    models = {"ANN": (False, False), "AAdN": (True, False)}
    if m:
        models.update({"ANA": (False, True), "AAdA": (True, True)})
    batch = EtsBatch(len(y), m)
    for key, (trend, seasonal) in models.items():
        batch.add(key, y, trend=trend, seasonal=seasonal)
    batch.add("log ANN", np.log1p(y))
    ends = [66, 74, 82, 90]
    batch.run(ends)
    for end in ends:
        for key, (trend, seasonal) in models.items():
            reference = ets(y[:end], 8, trend=trend, m=m if seasonal else None)
            _assert_same_fit(batch.fit(key, end, 8), reference)
        _assert_same_fit(batch.fit("log ANN", end, 8), ets(np.log1p(y[:end]), 8))


def test_the_batched_choice_equals_fitting_every_candidate_on_every_prefix():
    rng = np.random.default_rng(8)
    t = np.arange(110)
    y = 300 + 2 * t + 40 * np.sin(2 * np.pi * t / 52) + rng.normal(0, 15, 110)
    days = 19000 + 7 * t
    cfg = {"period": "W", "alpha": 0.05, "seasonal_lag": None, "maxiter": 50}
    fast, slow = _record(len(y)), _record(len(y))
    got = select_and_forecast(fast, days, y, 8, cfg)
    expected = select_and_forecast(slow, days, y, 8, cfg, batched=False)
    assert fast["selection"]["scores"] == pytest.approx(slow["selection"]["scores"], rel=1e-9)
    assert fast["model"] == slow["model"] and fast["errors"] == slow["errors"]
    for key in ("forecast", "lower", "upper"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-9)


def test_kpss_level_equals_statsmodels():
    from statsmodels.tsa.stattools import kpss

    rng = np.random.default_rng(6)
    for x in (rng.normal(size=80), np.cumsum(rng.normal(size=120)), rng.normal(size=30)):
        with pytest.warns(Warning):  # InterpolationWarning or FutureWarning
            statistic, pvalue, lags, _ = kpss(x, regression="c", nlags="auto")
        assert kpss_level(x) == pytest.approx((statistic, pvalue, lags), rel=1e-12)


def _arma11(phi, theta, n, seed):
    e = np.random.default_rng(seed).normal(size=n + 100)
    u = np.zeros(n + 100)
    for t in range(1, n + 100):
        u[t] = phi * u[t - 1] + e[t] + theta * e[t - 1]
    return u[100:]


@pytest.mark.parametrize(("phi", "theta"), [(0.7, 0.0), (0.0, 0.5), (0.5, -0.3)])
def test_arima11_recovers_the_simulated_coefficients(phi, theta):
    y = 10 + _arma11(phi, theta, 2000, seed=11)
    fit = arima11(y, 4, d=0)["parameters"]
    assert fit["phi"] == pytest.approx(phi, abs=0.06)
    assert fit["theta"] == pytest.approx(theta, abs=0.06)
    assert fit["coef"][0] == pytest.approx(10, abs=0.3)  # the mean
    assert fit["sigma2"] == pytest.approx(1, rel=0.1)


def test_arima11_with_drift_extrapolates_a_pure_trend():
    y = 100 + 3.0 * np.arange(60)
    out = arima11(y, 6, d=1)
    np.testing.assert_allclose(out["forecast"], 100 + 3.0 * np.arange(60, 66))
    assert np.all(out["upper"] - out["lower"] < 1e-6)  # no noise, no width


def test_arima11_filters_with_fixed_coefficients():
    y = 5 + _arma11(0.6, 0.2, 300, seed=2)
    first = arima11(y[:200], 8, d=0)
    later = arima11(y, 8, d=0, fixed=first["fixed"])
    assert later["parameters"] == {**first["parameters"], "sigma2": later["parameters"]["sigma2"]}
    np.testing.assert_allclose(later["forecast"][-1], first["parameters"]["coef"][0], atol=0.5)


def test_the_combination_is_the_mean_of_its_candidates():
    y = 200 + 2.0 * np.arange(100) + np.random.default_rng(9).normal(0, 8, 100)
    days = 19000 + 7 * np.arange(100)
    cfg = {"period": "W", "alpha": 0.05, "seasonal_lag": None, "maxiter": 50}
    pool = dict(_with_combination(_batched_pool(y, days, [76, 84, 92], cfg)))
    parts = [pool[name](100, 8) for name in COMBINED_NAMES]
    combined = pool["combination"](100, 8)
    for key in ("forecast", "lower", "upper"):
        np.testing.assert_allclose(combined[key], np.mean([p[key] for p in parts], axis=0))
