"""Protocols, baselines on tiny hand-made series, the harness contract and the leak test;
plus the reference figures on the real data (the course's published backtest numbers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from salesforecast.data.ingest import load
from salesforecast.errors import SalesForecastError
from salesforecast.evaluation import baselines, harness, protocols
from salesforecast.evaluation.protocols import Panel

START = pd.Timestamp("2010-02-05")


def frame_of(series: dict[tuple[int, int], np.ndarray], start: pd.Timestamp = START) -> pd.DataFrame:
    """Long sales frame from {(store, dept): weekly values with NaN for absent weeks}."""
    parts = []
    for (store, dept), values in series.items():
        dates = pd.date_range(start, periods=len(values), freq="7D")
        keep = ~np.isnan(values)
        parts.append(
            pd.DataFrame(
                {
                    "store": store,
                    "dept": dept,
                    "date": dates[keep],
                    "weekly_sales": values[keep],
                    "is_holiday": False,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def p50_by_key(frame: pd.DataFrame) -> dict[tuple[int, int], np.ndarray]:
    return {
        (int(s), int(d)): part.sort_values("h")["p50"].to_numpy()
        for (s, d), part in frame.groupby(["store", "dept"])
    }


# ----------------------------------------------------------------------------- protocols


def test_holdout_every_test_week_is_an_origin_and_the_h1_target() -> None:
    plan = protocols.holdout(horizon=8)
    origins = [w.origin for w in plan.windows]
    assert len(origins) == 39
    assert origins[0] == pd.Timestamp("2012-02-03") and origins[-1] == pd.Timestamp("2012-10-26")
    assert [w.target_dates()[0] for w in plan.windows] == origins
    assert plan.windows[0].horizon == 8 and plan.windows[-1].horizon == 1  # steps stay inside the period
    assert plan.windows[-2].target_dates()[-1] == pd.Timestamp("2012-10-26")


def test_backtest_is_ten_two_month_folds_of_87_weeks() -> None:
    plan = protocols.backtest()
    assert len(plan.windows) == 10
    first, last = plan.windows[0], plan.windows[-1]
    assert first.origin == pd.Timestamp("2011-03-04") and first.target_dates()[-1] == pd.Timestamp(
        "2011-04-29"
    )
    assert plan.windows[1].origin == pd.Timestamp("2011-05-06")
    assert last.origin == pd.Timestamp("2012-09-07") and last.target_dates()[-1] == pd.Timestamp("2012-10-26")
    assert sum(w.horizon for w in plan.windows) == 87
    assert plan.horizon == 9
    weeks = np.concatenate([w.target_dates() for w in plan.windows])
    assert len(np.unique(weeks)) == 87  # folds tile the period without overlap
    with pytest.raises(SalesForecastError, match="9 weeks"):
        protocols.make("backtest", horizon=8)
    with pytest.raises(SalesForecastError, match="unknown protocol"):
        protocols.make("crossval")


def test_panel_until_shows_only_weeks_before_the_origin_and_series_seen_by_then() -> None:
    late = np.full(20, np.nan)
    late[15:] = 7.0
    panel = Panel.from_frame(frame_of({(1, 1): np.arange(20.0), (1, 2): late}))
    origin = START + 10 * protocols.WEEK
    visible = panel.until(origin)
    assert visible.dates[-1] == origin - protocols.WEEK and len(visible.dates) == 10
    assert visible.keys.to_dict("records") == [{"store": 1, "dept": 1}]  # dept 2 starts later
    assert visible.to_frame()["date"].max() < origin


def test_protocol_refuses_data_that_do_not_cover_it() -> None:
    panel = Panel.from_frame(frame_of({(1, 1): np.arange(60.0)}))
    with pytest.raises(SalesForecastError, match="before the end of the test period"):
        protocols.backtest().check(panel)


# ----------------------------------------------------------------------------- baselines


def test_naive_repeats_the_last_observed_value_across_gaps() -> None:
    values = np.arange(1.0, 31.0)
    values[-3:] = np.nan  # the last three weeks are absent: the last value is week 27's
    panel = Panel.from_frame(frame_of({(1, 1): values, (2, 5): np.full(30, 4.0)}))
    origin = START + 30 * protocols.WEEK
    out = baselines.Naive().forecast(panel, origin, 3)
    got = p50_by_key(out)
    np.testing.assert_array_equal(got[(1, 1)], [27.0, 27.0, 27.0])
    np.testing.assert_array_equal(got[(2, 5)], [4.0, 4.0, 4.0])
    assert list(out["target_date"].iloc[:3]) == list(pd.date_range(origin, periods=3, freq="7D"))


def test_seasonal_naive_takes_the_week_52_weeks_earlier_else_the_last_value() -> None:
    values = np.arange(100.0, 160.0)  # 60 weeks
    values[9] = np.nan  # the week 52 before target 61 is absent
    panel = Panel.from_frame(frame_of({(1, 1): values}))
    origin = START + 60 * protocols.WEEK  # target steps are weeks 60, 61, 62
    got = p50_by_key(baselines.SeasonalNaive().forecast(panel, origin, 3))[(1, 1)]
    np.testing.assert_array_equal(got, [values[8], values[59], values[10]])


def test_series_without_history_are_not_forecast() -> None:
    panel = Panel.from_frame(frame_of({(1, 1): np.arange(60.0)}))
    origin = START + 60 * protocols.WEEK
    for model in baselines.default_baselines():
        model.fit(panel)
        out = model.forecast(panel, origin, 4)
        assert set(zip(out["store"], out["dept"], strict=True)) == {(1, 1)}


def seasonal_truth(dates: pd.DatetimeIndex, level: float, scale: float) -> np.ndarray:
    week = baselines.week_of_year(dates)
    return level + scale * (300.0 * (dates.year.to_numpy() - 2010) + 1000 * np.sin(week / 52 * 2 * np.pi))


def test_regression_recovers_an_exact_year_plus_week_of_year_series() -> None:
    dates = pd.date_range(START, periods=130, freq="7D")
    truth = {(s, 3): seasonal_truth(dates, 5000.0 * s, s) for s in (1, 2, 3)}
    history = Panel.from_frame(frame_of({k: v[:110] for k, v in truth.items()}))
    origin = dates[110]
    for rank in (None, 1):  # the store matrix has rank 1 after removing store means
        model = baselines.SeasonalRegression(rank=rank, christmas=False)
        model.fit(history)
        got = p50_by_key(model.forecast(history, origin, 20))
        for key, values in truth.items():
            np.testing.assert_allclose(got[key], values[110:], rtol=1e-9, atol=1e-6)


def test_svd_rank_smooths_noise_that_the_per_series_fit_keeps() -> None:
    rng = np.random.default_rng(1)
    dates = pd.date_range(START, periods=110, freq="7D")
    series = {(s, 1): seasonal_truth(dates, 1000.0 * s, 1) + rng.normal(0, 500, 110) for s in range(1, 7)}
    history = Panel.from_frame(frame_of(series))
    outs = {}
    for rank in (None, 1):
        model = baselines.SeasonalRegression(rank=rank, christmas=False)
        model.fit(history)
        outs[rank] = model.forecast(history, dates[-1] + protocols.WEEK, 8)["p50"].to_numpy()
    assert not np.allclose(outs[None], outs[1])


def test_regression_gives_a_week_absent_from_training_the_reference_level_as_r_does() -> None:
    dates = pd.date_range(START, periods=60, freq="7D")
    values = seasonal_truth(dates, 5000.0, 1.0)
    week = baselines.week_of_year(dates)
    values[week == 20] = np.nan  # week 20 never observed: its dummy is aliased, coefficient 0
    history = Panel.from_frame(frame_of({(1, 1): values}))
    model = baselines.SeasonalRegression(rank=None, christmas=False)
    model.fit(history)
    origin = pd.Timestamp("2011-05-20")  # ISO week 20 of 2011
    assert baselines.week_of_year(pd.DatetimeIndex([origin]))[0] == 20
    p50 = model.forecast(history, origin, 1)["p50"].iloc[0]
    # R's lm sets the aliased week-20 coefficient to 0 (NA -> 0): the forecast is the reference
    # week 1 level of 2011, not a minimum-norm guess
    week1 = seasonal_truth(pd.DatetimeIndex([pd.Timestamp("2011-01-07")]), 5000.0, 1.0)[0]
    assert p50 == pytest.approx(week1)


def test_kept_columns_drops_later_linear_combinations_in_order() -> None:
    x = np.column_stack(
        [np.ones(6), np.arange(6.0), 2 * np.arange(6.0) + 1, np.zeros(6), np.arange(6.0) ** 2]
    )
    keep = baselines.kept_columns((x.T @ x)[None])[0]
    np.testing.assert_array_equal(keep, [True, True, False, False, True])


def test_christmas_offsets_and_shift() -> None:
    assert [baselines.christmas_offset(y) for y in (2010, 2011, 2012)] == [6, 5, 3]
    surge = np.array([[100.0, 200, 300, 400, 100], [100.0, 200, 300, 400, 100]])
    moved = baselines.christmas_shift(surge, np.array([1, 1]), 1.0)
    expected = np.array(
        [100.0, 6 / 7 * 200 + 100 / 7, 6 / 7 * 300 + 200 / 7, 6 / 7 * 400 + 300 / 7, 6 / 7 * 100 + 400 / 7]
    )
    np.testing.assert_allclose(moved[0], expected)
    flat = np.full((2, 5), 100.0)
    np.testing.assert_array_equal(baselines.christmas_shift(flat, np.array([1, 1]), 1.0), flat)


# ----------------------------------------------------------------------------- harness


@pytest.fixture(scope="module")
def synth_panel(synth_dir: Path) -> Panel:
    return Panel.from_frame(load(synth_dir).train)


def test_leak_changing_data_after_an_origin_leaves_earlier_forecasts_unchanged(synth_panel: Panel) -> None:
    plan = protocols.backtest()
    cut = plan.windows[4].origin
    sales = synth_panel.sales.copy()
    after = synth_panel.dates >= cut
    rng = np.random.default_rng(0)
    sales[:, after] = np.where(np.isnan(sales[:, after]), np.nan, rng.normal(0, 1e5, sales[:, after].shape))
    changed = Panel(synth_panel.keys, synth_panel.dates, sales, synth_panel.holiday)
    runs = [
        harness.evaluate(p, plan, baselines.default_baselines(), retrain_every=1).forecasts
        for p in (synth_panel, changed)
    ]
    before = [r[r["origin_date"] <= cut] for r in runs]
    pd.testing.assert_frame_equal(before[0].drop(columns="actual"), before[1].drop(columns="actual"))
    later = [r[r["origin_date"] > cut] for r in runs]
    assert not np.allclose(later[0]["p50"], later[1]["p50"])  # the test can fail: later forecasts move


class Fixed:
    """A stand-in trained model: fixed forecasts, declared training end."""

    name = "fixed"
    has_quantiles = False
    refit_every_origin = False

    def __init__(self, trained_until: pd.Timestamp | None, bad_dates: bool = False) -> None:
        self.trained_until = trained_until
        self.bad_dates = bad_dates
        self.fits = 0

    def fit(self, history: Panel) -> None:
        self.fits += 1
        self.trained_until = history.dates[-1]

    def forecast(self, history: Panel, origin: pd.Timestamp, horizon: int) -> pd.DataFrame:
        out = baselines.Naive().forecast(history, origin, horizon)
        if self.bad_dates:
            out["target_date"] += pd.Timedelta(days=7)
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


def test_harness_schedules_retraining_every_k_origins(synth_panel: Panel) -> None:
    model = Fixed(trained_until=None)
    harness.evaluate(synth_panel, protocols.backtest(), [model], retrain_every=3)
    assert model.fits == 4  # folds 1, 4, 7, 10


def test_harness_refuses_a_model_trained_past_the_origin(synth_panel: Panel) -> None:
    with pytest.raises(SalesForecastError, match="leak"):
        harness.evaluate(synth_panel, protocols.holdout(2), [Fixed(pd.Timestamp("2012-03-02"))])
    with pytest.raises(SalesForecastError, match="trained_until"):
        harness.evaluate(synth_panel, protocols.holdout(2), [Fixed(None)])
    ok = harness.evaluate(synth_panel, protocols.holdout(2), [Fixed(pd.Timestamp("2012-01-27"))])
    assert ok.models["fixed"]["fits"] == 0


def test_harness_rejects_forecasts_that_break_the_contract(synth_panel: Panel) -> None:
    with pytest.raises(SalesForecastError, match="origin \\+ 7"):
        harness.evaluate(synth_panel, protocols.holdout(2), [Fixed(None, bad_dates=True)], retrain_every=1)


def test_every_model_is_scored_on_the_same_rows_with_missing_forecasts_as_zero(synth_panel: Panel) -> None:
    keys = synth_panel.keys
    sales = synth_panel.sales.copy()
    newcomer = int(np.flatnonzero((keys["store"] == keys["store"].iloc[0]).to_numpy())[0])
    plan = protocols.holdout(2)
    sales[newcomer, synth_panel.dates < plan.windows[3].origin] = np.nan  # starts inside the test period
    panel = Panel(keys, synth_panel.dates, sales, synth_panel.holiday)
    result = harness.evaluate(panel, plan, baselines.default_baselines())
    sizes = result.forecasts.groupby("model").size()
    assert sizes.nunique() == 1 and sizes.iloc[0] == len(plan.targets(panel))
    imputed = result.forecasts[result.forecasts["imputed"]]
    assert len(imputed) > 0 and (imputed["p50"] == 0).all()
    # its first week (window 4) is a target of origins 3 and 4, when it has no history yet
    assert set(imputed["origin_date"]) == {plan.windows[2].origin, plan.windows[3].origin}
    assert all(info["imputed_rows"] == len(imputed) / 4 for info in result.models.values())


# ----------------------------------------------------------------------------- reference figures


@pytest.mark.realdata
def test_reference_figures_on_the_real_data(real_data_dir: Path) -> None:
    """The published figures: backtest seasonal naive 1,887, per-series regression 1,653, SVD
    1,609 and 1,580 with the Christmas adjustment; holdout h=1 naive ~1,740, seasonal naive ~1,800."""
    panel = Panel.from_frame(load(real_data_dir).train)
    models = [
        baselines.SeasonalNaive(),
        baselines.SeasonalRegression(rank=None, christmas=False, name="per_series"),
        baselines.SeasonalRegression(rank=8, christmas=False, name="svd"),
        baselines.SeasonalRegression(rank=8, christmas=True, name="svd_christmas"),
    ]
    scores = {
        n: e["score"] for n, e in harness.evaluate(panel, protocols.backtest(), models, 1).summary().items()
    }
    assert scores["seasonal_naive"] == pytest.approx(1887.0, abs=0.5)
    assert scores["per_series"] == pytest.approx(1653.4, abs=0.5)
    assert scores["svd"] == pytest.approx(1608.8, abs=0.5)
    assert scores["svd_christmas"] == pytest.approx(1579.5, abs=0.5)
    plan = protocols.holdout(horizon=1)
    h1 = harness.evaluate(panel, plan, [baselines.Naive(), baselines.SeasonalNaive()]).summary()
    assert h1["naive"]["per_horizon"]["1"]["wmae"] == pytest.approx(1734.0, abs=0.5)
    assert h1["seasonal_naive"]["per_horizon"]["1"]["wmae"] == pytest.approx(1795.3, abs=0.5)
