"""Frame -> panel -> windows: layout, gaps, scaling, the split, and a per-window reference."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from salesforecast.config import Settings
from salesforecast.errors import SalesForecastError
from salesforecast.model import windows as W

START = pd.Timestamp("2010-02-05", tz="UTC")


def small_frame(series: dict[tuple[int, int], list[float]], first_week: dict | None = None) -> pd.DataFrame:
    """A frame with the required columns and a few features; NaN sales = unobserved week."""
    rows = []
    for (store, dept), values in series.items():
        offset = (first_week or {}).get((store, dept), 0)
        for i, value in enumerate(values):
            rows.append(
                {
                    "store": store,
                    "dept": dept,
                    "date": START + (offset + i) * W.WEEK,
                    "weekly_sales": value,
                    "is_observed": not np.isnan(value),
                    "store_type": store % 3,
                    "store_size": 100_000 + store,
                    "is_holiday": (offset + i) % 10 == 0,
                    "holiday_type": int((offset + i) % 10 == 0),
                    "temperature": 50.0 + i,
                }
            )
    return pd.DataFrame(rows)


def panel_of(frame: pd.DataFrame, fit_until: pd.Timestamp | None = None, season_window: int = 0) -> W.Panel:
    prep = W.fit_preprocessing(frame, fit_until or pd.Timestamp("2100-01-01"), season_window=season_window)
    return W.build_panel(frame, prep)


def test_panel_holds_every_observed_sale_and_masks_the_rest(synth_frame):
    panel = panel_of(synth_frame)
    observed = synth_frame[synth_frame["is_observed"]]
    assert int(panel.observed.sum()) == len(observed)
    assert panel.observed.shape == (synth_frame.groupby(["store", "dept"]).ngroups, len(panel.dates))
    keys = panel.keys.reset_index().set_index(["store", "dept"])["index"]
    rows = keys.loc[list(zip(observed["store"], observed["dept"], strict=True))].to_numpy()
    cols = ((observed["date"].dt.tz_localize(None) - panel.dates[0]) // W.WEEK).to_numpy()
    np.testing.assert_allclose(panel.target[rows, cols].numpy(), observed["weekly_sales"], rtol=1e-6)
    assert float(panel.target[~panel.observed].abs().sum()) == 0.0


def test_gather_matches_a_per_window_reference(synth_frame):
    L, H = 52, 8
    panel = panel_of(synth_frame, season_window=2)
    series, start = W.window_index(panel, L, H, 0, len(panel.dates), min_encoder_weeks=4)
    pick = torch.tensor([0, 1, len(series) // 2, len(series) - 1])
    s, t0 = series[pick], start[pick]
    batch = W.gather(panel, s, t0, L, H)
    by_key = synth_frame.set_index(["store", "dept", "date"])["weekly_sales"]
    for i in range(len(pick)):
        store, dept = (int(v) for v in panel.keys.iloc[int(s[i])])
        dates = [panel.dates[0].tz_localize("UTC") + (int(t0[i]) - L + j) * W.WEEK for j in range(L + H)]
        sales = np.array([by_key.get((store, dept, d), np.nan) for d in dates], dtype="float64")
        enc = sales[:L]
        scale = max(np.nanmean(np.abs(enc)) if np.isfinite(enc).any() else 0.0, panel.prep.scale_floor)
        assert float(batch["scale"][i]) == pytest.approx(scale, rel=1e-5)
        np.testing.assert_array_equal(batch["mask"][i].numpy(), np.isfinite(sales[L:]))
        expected_target = np.nan_to_num(sales[L:] / scale)
        np.testing.assert_allclose(batch["target"][i].numpy(), expected_target, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            batch["observed_real"][i, :, 0].numpy(), np.nan_to_num(enc / scale), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_array_equal(
            batch["observed_real"][i, :, 1].numpy(), np.isfinite(enc).astype("float32")
        )
        season = np.array([by_key.get((store, dept, d - W.SEASON * W.WEEK), np.nan) for d in dates[L:]])
        season_col = panel.prep.model_inputs()["known_reals"].index("sales_52_weeks_ago")
        np.testing.assert_allclose(
            batch["known_real"][i, L:, season_col].numpy(),
            np.nan_to_num(season / scale),
            rtol=1e-5,
            atol=1e-6,
        )
        # Last year's neighbouring weeks, for encoder and decoder, never before the window's first week - 52.
        assert W.season_neighbours(2) == [53, 51, 54, 50]
        for lag in W.season_neighbours(2):
            col = panel.prep.model_inputs()["known_reals"].index(f"sales_{lag}_weeks_ago")
            first = dates[0] - W.SEASON * W.WEEK
            earlier = [d - lag * W.WEEK for d in dates]
            near = np.array([by_key.get((store, dept, d), np.nan) if d >= first else np.nan for d in earlier])
            np.testing.assert_allclose(
                batch["known_real"][i, :, col].numpy(), np.nan_to_num(near / scale), rtol=1e-5, atol=1e-6
            )
        last = enc[np.isfinite(enc)][-1] / scale
        naive = np.where(np.isfinite(season), season / scale, last)
        np.testing.assert_allclose(batch["naive"][i].numpy(), naive, rtol=1e-5, atol=1e-6)


def test_no_input_reads_the_decoder_weeks_sales(synth_frame):
    """Last year's neighbouring weeks included: sales from the origin on change only target and mask."""
    L, H = 52, 50
    panel = panel_of(synth_frame, season_window=2)
    origin = 80  # grid week; encoder 28..79, decoder 80..129 of 143
    s = torch.arange(len(panel.keys))
    t0 = torch.full_like(s, origin)
    before = W.gather(panel, s, t0, L, H)
    poisoned = copy.deepcopy(panel)
    poisoned.target[:, origin:] = 1e9
    after = W.gather(poisoned, s, t0, L, H)
    for name in before.keys() - {"target"}:
        torch.testing.assert_close(after[name], before[name], msg=name)
    assert (after["target"] != before["target"]).any()
    with pytest.raises(SalesForecastError, match="horizon 51 weeks with season window 2: at most 50"):
        W.gather(panel, s, t0, L, 51)


def test_scaling_survives_zero_negative_and_tiny_sales():
    weeks = 20
    frame = small_frame(
        {
            (1, 1): [0.0] * weeks,
            (1, 2): [-50.0, 150.0] * (weeks // 2),
            (1, 3): [0.5] * weeks,
            (2, 1): [1e6] * weeks,
        }
    )
    panel = panel_of(frame)
    series, start = W.window_index(panel, 8, 4, 0, weeks, min_encoder_weeks=8)
    batch = W.gather(panel, series, start, 8, 4)
    for name, value in batch.items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), name
    scale = {int(s): float(v) for s, v in zip(series, batch["scale"], strict=True)}
    floor = panel.prep.scale_floor
    assert scale[0] == floor  # all zero
    assert scale[1] == pytest.approx(100.0)  # mean |-50|, |150|
    assert scale[2] == floor  # tiny
    assert scale[3] == pytest.approx(1e6)
    assert float(batch["target"][series == 3].max()) == pytest.approx(1.0)


def test_windows_respect_the_period_gaps_and_history():
    L, H = 8, 4
    values = [100.0] * 40
    values[12:30] = [np.nan] * 18  # a long gap
    frame = small_frame({(1, 1): values, (1, 2): [10.0] * 20}, first_week={(1, 2): 20})
    panel = panel_of(frame)
    series, start = W.window_index(panel, L, H, first_week=0, end_week=36, min_encoder_weeks=6)
    obs = panel.observed
    for s, t in zip(series.tolist(), start.tolist(), strict=True):
        assert t >= 0 and t + H <= 36, "decoder outside the period"
        assert obs[s, max(0, t - L) : t].sum() >= 6, "too little history"
        assert obs[s, t : t + H].any(), "no observed target"
    starts_1 = set(start[series == 0].tolist())
    assert not starts_1 & set(range(16, 30)), "windows whose targets all fall in the gap"
    # Late starter: its first window needs 6 observed weeks before it (weeks 20..25).
    assert start[series == 1].min() == 26
    val = W.window_index(panel, L, H, first_week=36, end_week=40, min_encoder_weeks=6)
    assert torch.all(val[1] >= 36) and torch.all(val[1] + H <= 40) and len(val[0]) == 2
    short = W.window_index(panel, L, H, first_week=36, end_week=38, min_encoder_weeks=6)
    assert len(short[0]) == 0, "a period shorter than the horizon holds no whole window"


def test_preprocessing_is_fitted_on_training_weeks_only(synth_frame):
    fit_until = pd.Timestamp("2011-06-03")
    before = W.fit_preprocessing(synth_frame, fit_until, covariates="all")
    assert {"temperature", "cpi", "markdown1"} <= set(before.scaler)
    changed = synth_frame.copy()
    late = W._dates(changed) >= fit_until
    changed.loc[late, ["temperature", "cpi", "markdown1"]] += 1000.0
    changed.loc[late, "store_size"] *= 10
    after = W.fit_preprocessing(changed, fit_until, covariates="all")
    assert after.scaler == before.scaler
    assert W.fit_preprocessing(changed, pd.Timestamp("2012-10-27"), covariates="all").scaler != before.scaler


def test_optional_columns_may_be_missing_and_required_ones_may_not():
    frame = small_frame({(1, 1): [5.0] * 12}).drop(columns=["temperature", "holiday_type"])
    prep = W.fit_preprocessing(frame, pd.Timestamp("2100-01-01"), covariates="all")
    inputs = prep.model_inputs()
    assert "temperature" not in inputs["observed_reals"] and inputs["known_categoricals"] == {}
    assert {"week_sin", "week_cos", "days_to_christmas"} <= set(prep.known_reals)  # computed here
    panel = W.build_panel(frame, prep)
    assert panel.known_cat.shape[-1] == 0
    with pytest.raises(SalesForecastError, match=r"missing columns \['weekly_sales'\]"):
        W.fit_preprocessing(frame.drop(columns=["weekly_sales"]), pd.Timestamp("2100-01-01"))


def test_future_known_inputs_come_from_store_features(synth_dir):
    from salesforecast.data.ingest import load
    from salesforecast.features.build import build

    tables = build(load(synth_dir))
    frame = W.join_feature_tables(tables.sales, tables.store)
    prep = W.fit_preprocessing(frame, pd.Timestamp("2012-01-01"))
    panel = W.build_panel(frame, prep, store_features=tables.store)
    assert panel.dates[-1] == tables.store["date"].max().tz_localize(None)  # the 39 future weeks
    future = panel.week(frame["date"].max()) + 1
    holiday = prep.known_reals.index("is_holiday")
    future_flags = panel.known_real[0, future:, holiday]
    first_store = tables.store[tables.store["store"] == panel.keys["store"][0]]
    expected = first_store.set_index("date")["is_holiday"]
    assert future_flags.sum() == expected[expected.index > frame["date"].max()].sum() > 0
    assert not panel.observed[:, future:].any()


def test_offline_join_samples_whole_series(synth_dir, tmp_path):
    from salesforecast.data.ingest import load
    from salesforecast.features.build import build
    from salesforecast.offline.store import write_feature_tables

    settings = Settings(workdir=tmp_path)
    raw = load(synth_dir)
    write_feature_tables(settings, build(raw), raw.sources)
    end = pd.Timestamp("2012-02-03", tz="UTC")
    frame = W._join_offline_tables(settings, sample_size=1000, end=end, seed=0)
    assert frame["date"].max() < end
    full = W._join_offline_tables(settings, sample_size=None, end=end, seed=0)
    sizes = full.groupby(["store", "dept"]).size()
    kept = frame.groupby(["store", "dept"]).size()
    assert 0 < len(kept) < len(sizes) and kept.sum() <= 1000
    pd.testing.assert_series_equal(kept, sizes.loc[kept.index])  # every week of each kept series
    assert {"temperature", "store_size", "sales_lag_52"} <= set(frame.columns)


def test_store_covariates_are_chosen_by_name_and_none_by_default(synth_frame):
    fit_until = pd.Timestamp("2011-06-03")
    assert W.fit_preprocessing(synth_frame, fit_until).past_reals == []
    every = W.fit_preprocessing(synth_frame, fit_until, covariates="all")
    assert every.past_reals == [c for c in W.PAST_REALS if c in synth_frame]
    some = W.fit_preprocessing(synth_frame, fit_until, covariates="CPI, temperature")
    assert some.past_reals == ["temperature", "cpi"]  # the model's order, whatever the option's
    assert "cpi" in some.model_inputs()["observed_reals"]
    assert "fuel_price" not in some.model_inputs()["observed_reals"]
    panel = W.build_panel(synth_frame, W.fit_preprocessing(synth_frame, fit_until))
    assert panel.past_real.shape[-1] == 0
    with pytest.raises(SalesForecastError, match=r"--covariates 'cpi,price': unknown \['price'\]"):
        W.covariate_columns("cpi,price")


def test_the_seasonal_naive_baseline_starts_the_tft_at_gathers_naive_and_traces(synth_frame):
    """With `baseline="seasonal_naive"` the untrained TFT forecasts exactly `gather`'s seasonal naive
    (sales 52 weeks earlier, else the last observed week) for every quantile, read from its inputs
    alone; trained or not, the traced serving graph gives the eager forecasts."""
    from salesforecast.model.tft import TFT, TFTConfig
    from salesforecast.serving.runtime import ModelRunner

    panel = panel_of(synth_frame)
    L, H = 52, 8
    series, start = W.window_index(panel, L, H, 0, len(panel.dates))
    pick = torch.linspace(0, len(series) - 1, 16).long()
    batch = W.gather(panel, series[pick], start[pick], L, H)
    assert (batch["naive"] != 0).any()
    torch.manual_seed(0)
    config = TFTConfig(
        **panel.prep.model_inputs(), encoder_length=L, horizon=H, hidden_size=32, variable_size=16
    )
    model = TFT(TFTConfig(**(config.to_dict() | {"baseline": "seasonal_naive"}))).eval()
    pred = model.predict(batch)
    torch.testing.assert_close(pred, batch["naive"][..., None].expand(-1, -1, 3))

    torch.nn.init.normal_(model.head.weight)  # as if trained
    runner = ModelRunner(model, workers=1)
    assert runner.traced
    with torch.inference_mode():
        assert torch.equal(runner(batch), model.predict(batch))
    with pytest.raises(ValueError, match="baseline"):
        TFT(TFTConfig(**(config.to_dict() | {"baseline": "mean"})))
