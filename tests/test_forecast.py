"""Tests of models/forecast.py: per-series ARIMA, fallbacks, backtest metrics, parallelism,
the planted seasonality of the built-in data and the CDNOW weekly revenue backtest."""

import math

import numpy as np
import pandas as pd
import pytest

from models import forecast as fc
from models import synthetic
from models.forecast import forecast_series, fourier_terms, seasonal_naive


def _seasonal_trend_series(days=168, seed=0, start="2024-01-01"):
    """Daily: level 100, +0.5 a day, a weekend boost, Gaussian noise (sd 4)."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=days, freq="D")
    weekly = np.array([0.0, -5.0, -3.0, 0.0, 6.0, 20.0, 12.0])
    y = 100 + 0.5 * np.arange(days) + weekly[idx.day_of_week] + rng.normal(0, 4, days)
    return pd.Series(y, index=idx)


def _weekly_series(weeks=60, seed=0, level=50.0):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=weeks, freq="7D")  # Mondays
    return pd.Series(level + 0.3 * np.arange(weeks) + rng.normal(0, 3, weeks), index=idx)


def _final(result, name):
    f = result.fits
    return f[(f["series"] == name) & (f["stage"] == "final")].iloc[0]


def _backtest(result, name):
    return result.backtest.set_index("series").loc[name]


# -- helpers ------------------------------------------------------------------------------


def test_fourier_terms_are_periodic_in_days():
    X = fourier_terms([0, 1, 7, 8], 7.0, 2)
    assert X.shape == (4, 4)
    np.testing.assert_allclose(X[0], X[2], atol=1e-12)
    np.testing.assert_allclose(X[1], X[3], atol=1e-12)
    np.testing.assert_allclose(X[1, :2], [math.sin(2 * math.pi / 7), math.cos(2 * math.pi / 7)])


def test_seasonal_naive_repeats_the_last_season_with_widening_intervals():
    y = [1.0, 2.0, 3.0, 2.0, 3.0, 5.0]
    f, lo, hi = seasonal_naive(y, 5, 3, alpha=0.05)
    assert f.tolist() == [2.0, 3.0, 5.0, 2.0, 3.0]
    s = math.sqrt((1 + 1 + 4) / 3)  # differences at lag 3: 1, 1, 2
    half = 1.959963984540054 * s
    np.testing.assert_allclose(hi - f, [half] * 3 + [half * math.sqrt(2)] * 2)
    np.testing.assert_allclose(f - lo, hi - f)


# -- one model per series -----------------------------------------------------------------


def test_seasonal_trend_series_beats_seasonal_naive_and_intervals_cover_the_truth():
    y = _seasonal_trend_series()
    result = forecast_series({"s": y}, period="D", horizon=14, backtest_periods=28)
    bt = _backtest(result, "s")
    assert bt["seasonal_lag"] == 7
    assert bt["mase"] < 1.0
    assert bt["relative_mae"] < 1.0
    assert bt["coverage"] >= 0.8
    assert bt["mape_ignored"] == 0 and 0 < bt["mape"] < 10
    fit = _final(result, "s")
    assert fit["status"] == "ok" and fit["fallback"] is None
    assert fit["regressors"] == ["fourier(7 days, 3)"]  # 168 days: no yearly terms
    assert fit["candidates"] == 24 and fit["converged"]  # both scales
    f = result.forecasts
    assert len(f) == 14 and f["step"].tolist() == list(range(1, 15))
    assert f["period"].iloc[0] == y.index[-1] + pd.Timedelta(days=1)
    assert (f["lower"] <= f["forecast"]).all() and (f["forecast"] <= f["upper"]).all()
    # the weekend boost continues into the horizon
    saturdays = f[f["period"].dt.day_of_week == 5]["forecast"]
    tuesdays = f[f["period"].dt.day_of_week == 1]["forecast"]
    assert saturdays.min() > tuesdays.max()


def test_constant_and_all_zero_series_are_reported_not_fitted():
    idx = pd.date_range("2024-01-01", periods=40, freq="D")
    data = {"constant": pd.Series(7.0, index=idx), "zeros": pd.Series(0.0, index=idx)}
    result = forecast_series(data, period="D", horizon=5, backtest_periods=7)
    for name, level in (("constant", 7.0), ("zeros", 0.0)):
        fit = _final(result, name)
        assert fit["status"] == "fallback" and fit["fallback"] == "constant series"
        assert fit["model"] == "seasonal naive (lag 7)"
        rows = result.forecasts[result.forecasts["series"] == name]
        assert rows["forecast"].tolist() == [level] * 5
        assert rows["lower"].tolist() == [level] * 5 and rows["upper"].tolist() == [level] * 5
        bt = _backtest(result, name)
        assert bt["mae"] == 0.0 and math.isnan(bt["mase"])
        assert "MASE undefined" in bt["note"]
    assert _backtest(result, "zeros")["mape_ignored"] == 7
    assert math.isnan(_backtest(result, "zeros")["mape"])


def test_too_short_series_falls_back_to_the_seasonal_naive():
    idx = pd.date_range("2024-01-01", periods=5, freq="7D")
    result = forecast_series(
        {"short": pd.Series([3.0, 4.0, 5.0, 4.0, 6.0], index=idx)}, period="W", horizon=3
    )
    fit = _final(result, "short")
    assert fit["status"] == "fallback" and "too short for ARIMA" in fit["fallback"]
    assert fit["model"] == "seasonal naive (lag 1)"
    assert result.forecasts["forecast"].tolist() == [6.0, 6.0, 6.0]
    bt = _backtest(result, "short")
    assert "too short for a backtest of 8 periods" in bt["note"] and math.isnan(bt["mae"])


def test_mape_leaves_out_zero_actuals_and_says_how_many():
    y = _seasonal_trend_series(days=84).to_numpy().copy()
    y[-3:] = 0.0
    idx = pd.date_range("2024-01-01", periods=84, freq="D")
    result = forecast_series({"s": pd.Series(y, index=idx)}, period="D", horizon=1)
    bt = _backtest(result, "s")
    assert bt["mape_ignored"] == 3 and "3 zero actual(s)" in bt["note"]
    assert math.isfinite(bt["mape"])


def test_a_fit_that_raises_is_recorded_and_the_series_falls_back(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("LU decomposition error")

    monkeypatch.setattr(fc, "_fit_one", broken)
    y = _weekly_series()
    result = forecast_series({"w": y}, period="W", horizon=4, backtest_periods=0)
    fit = _final(result, "w")
    assert fit["status"] == "fallback"
    assert len(fit["errors"]) == 25  # twelve grid fits on each scale and ARIMA(0,1,1)
    assert all("LU decomposition error" in e for e in fit["errors"])
    assert "ARIMA(0,1,1) raised" in fit["fallback"]
    assert fit["model"] == "seasonal naive (lag 1)"  # 60 weeks < 1.25 x 52
    assert len(result.forecasts) == 4 and result.backtest.empty


def test_a_series_that_cannot_be_forecast_is_reported_and_the_others_go_on():
    good = _weekly_series()
    bad = good.copy()
    bad.iloc[10] = np.inf
    result = forecast_series({"bad": bad, "good": good}, period="W", horizon=2)
    assert result.failed() == ["bad"]
    fit = _final(result, "bad")
    assert fit["status"] == "failed" and "not finite (first at 2024-03-11)" in fit["error"]
    assert set(result.forecasts["series"]) == {"good"}
    assert _final(result, "good")["status"] == "ok"
    assert "no forecast" in _backtest(result, "bad")["note"]


def test_convergence_warnings_are_recorded_and_the_fallback_is_used():
    y = _seasonal_trend_series(days=84)
    result = forecast_series({"s": y}, period="D", horizon=7, backtest_periods=0, maxiter=1)
    fit = _final(result, "s")
    assert fit["nonconverged"] >= 1
    assert any(w.startswith("ConvergenceWarning") for w in fit["warnings"])
    assert fit["status"] == "fallback" or fit["nonconverged"] < fit["candidates"]
    if fit["status"] == "fallback":
        assert "did not converge" in fit["fallback"]


def test_parallel_processes_give_the_same_results_as_one(capsys):
    data = {f"item{i}": _weekly_series(seed=i, level=20.0 + 10 * i) for i in range(4)}
    messages = []
    one = forecast_series(data, period="W", horizon=4, processes=1)
    two = forecast_series(data, period="W", horizon=4, processes=2, progress=messages.append)
    pd.testing.assert_frame_equal(one.forecasts, two.forecasts)
    pd.testing.assert_frame_equal(one.backtest, two.backtest)
    drop = ["seconds"]
    pd.testing.assert_frame_equal(one.fits.drop(columns=drop), two.fits.drop(columns=drop))
    assert messages[-1] == "4/4 series fitted (0 fallback, 0 failed)"
    assert one.fits["series"].tolist()[::2] == list(data)


def test_long_frame_input_with_a_named_value_column_and_a_gap_filled_with_zero():
    y = _weekly_series(weeks=30)
    frame = pd.DataFrame(
        {"series": "total", "period": y.index.strftime("%Y-%m-%d"), "revenue": y.to_numpy()}
    ).drop(index=5)
    result = forecast_series(frame, period="W", horizon=2, value="revenue", backtest_periods=4)
    fit = _final(result, "total")
    assert fit["n"] == 30 and fit["filled"] == 1
    assert result.forecasts["period"].tolist() == [
        y.index[-1] + pd.Timedelta(weeks=1),
        y.index[-1] + pd.Timedelta(weeks=2),
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"period": "M"}, "period='M' should be one of"),
        ({"horizon": 0}, "horizon=0 should be an integer >= 1"),
        ({"horizon": 2.5}, "horizon=2.5 should be an integer"),
        ({"backtest_periods": -1}, "backtest_periods=-1 should be an integer >= 0"),
        ({"processes": 0}, "processes=0 should be an integer >= 1"),
        ({"alpha": 1.5}, "alpha=1.5 should be a number between 0 and 1"),
        ({"transform": "log"}, "transform='log' should be one of"),
        ({"value": "revenue"}, "missing the column(s) ['revenue']"),
        ({"progress": "yes"}, "progress='yes' should be a callable"),
    ],
)
def test_bad_arguments_are_refused_with_the_value(kwargs, message):
    frame = pd.DataFrame({"series": "a", "period": ["2024-01-01"], "value": [1.0]})
    args = {"period": "W", "horizon": 1, **kwargs}
    with pytest.raises(ValueError) as err:
        forecast_series(frame, **args)
    assert message in str(err.value)


def test_periods_must_be_mondays_for_weeks_and_unique():
    frame = pd.DataFrame({"series": "a", "period": ["2024-01-02"], "value": [1.0]})
    with pytest.raises(ValueError, match="2024-01-02 is not a Monday"):
        forecast_series(frame, period="W", horizon=1)
    frame = pd.DataFrame({"series": "a", "period": ["2024-01-01"] * 2, "value": [1.0, 2.0]})
    with pytest.raises(ValueError, match="period 2024-01-01 appears more than once"):
        forecast_series(frame, period="D", horizon=1)


# -- the built-in data and CDNOW ----------------------------------------------------------


def _revenue_by_period(frame, period):
    """Revenue per full period: days, or Monday-Sunday weeks wholly inside the log's span."""
    days = frame["timestamp"].dt.normalize()
    daily = frame.groupby(days)["revenue"].sum()
    daily = daily.asfreq("D", fill_value=0.0)
    if period == "D":
        return daily
    monday = daily.index - pd.to_timedelta(daily.index.day_of_week, unit="D")
    weekly = daily.groupby(monday).agg(["sum", "size"])
    return weekly.loc[weekly["size"] == 7, "sum"].asfreq("7D")


@pytest.fixture(scope="module")
def builtin_log(tmp_path_factory):
    """A generated log read with pandas: the lines the jobs would reject are dropped."""
    path = tmp_path_factory.mktemp("forecast") / "transactions.csv"
    truth = synthetic.generate(path, customers=4000, seed=7)
    raw = pd.read_csv(path, dtype=str, encoding_errors="replace", on_bad_lines="skip")
    ts = pd.to_datetime(raw["timestamp"], errors="coerce", format="ISO8601")
    quantity = pd.to_numeric(raw["quantity"], errors="coerce")
    price = pd.to_numeric(raw["unit_price"], errors="coerce")
    undecodable = raw.apply(lambda c: c.str.contains("\ufffd", na=False)).any(axis=1)
    ok = ts.notna() & (quantity > 0) & (price >= 0) & raw["customer_id"].notna() & ~undecodable
    frame = pd.DataFrame({"timestamp": ts[ok], "revenue": (quantity * price)[ok]})
    assert len(frame) == truth["lines_accepted"]
    assert frame["revenue"].sum() == pytest.approx(float(truth["revenue"]), abs=0.005)
    return frame


@pytest.mark.parametrize("period, backtest", [("D", 28), ("W", 8)])
def test_builtin_data_total_revenue_beats_the_seasonal_naive(builtin_log, period, backtest):
    total = _revenue_by_period(builtin_log, period)
    result = forecast_series(
        {"total": total}, period=period, horizon=backtest, backtest_periods=backtest
    )
    bt = _backtest(result, "total")
    fit = result.fits[result.fits["stage"] == "backtest"].iloc[0]
    print(f"\nbuilt-in {period}: {fit['model']}\n{result.backtest.to_string()}")
    assert fit["status"] == "ok"
    assert bt["seasonal_lag"] == {"D": 7, "W": 52}[period]
    assert bt["mase"] < 1.0
    assert bt["relative_mae"] < 1.0
    # the planted yearly cycle and (on daily data) the weekly one are modelled
    assert "fourier(365.25 days, 2)" in fit["regressors"]
    assert (period == "D") == ("fourier(7 days, 3)" in fit["regressors"])


def test_cdnow_weekly_revenue_backtest_is_reported(cdnow_path):
    raw = pd.read_csv(cdnow_path, sep=r"\s+", dtype={"customer_id": str, "date": str})
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(raw["date"], format="%Y%m%d"),
            "revenue": raw["dollar_value"].astype(float),
        }
    )
    weekly = _revenue_by_period(frame, "W")
    assert len(weekly) == 77  # 1997-01-06 .. 1998-06-22
    result = forecast_series({"cdnow": weekly}, period="W", horizon=8, backtest_periods=8)
    bt = _backtest(result, "cdnow")
    print(f"\nCDNOW weekly revenue:\n{result.backtest.to_string()}")
    print(result.fits.drop(columns=["errors"]).to_string())
    assert result.failed() == []
    for col in ("mae", "mape", "mase", "relative_mae", "coverage"):
        assert math.isfinite(bt[col]), col
    assert len(result.forecasts) == 8 and np.isfinite(result.forecasts["upper"]).all()
    # 69 fitted weeks give lag 52, whose in-sample scale compares weeks 53-69 with the
    # 1997 launch ramp: the MASE against the plain naive (lag 1) is reported too
    lag1 = forecast_series(
        {"cdnow": weekly}, period="W", horizon=8, backtest_periods=8, seasonal_lag=1
    )
    print(f"CDNOW, seasonal_lag=1:\n{lag1.backtest.to_string()}")
    assert math.isfinite(_backtest(lag1, "cdnow")["mase"])
