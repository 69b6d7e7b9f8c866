"""Feature values by hand, gaps on the grid, the calendar, and the proof that nothing leaks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from salesforecast.data.ingest import load
from salesforecast.features.build import build, build_sales_features, build_store_features
from salesforecast.features.calendar import HOLIDAY_CODES, calendar_features, holiday_weeks

WEEKS = pd.date_range("2010-02-05", periods=10, freq="7D")


def _train(values: dict[tuple[int, int], list[float | None]]) -> pd.DataFrame:
    """Long frame from per-series lists; None means the week has no row (a gap)."""
    rows = [
        (store, dept, WEEKS[i], v)
        for (store, dept), series in values.items()
        for i, v in enumerate(series)
        if v is not None
    ]
    frame = pd.DataFrame(rows, columns=["store", "dept", "date", "weekly_sales"])
    frame["is_holiday"] = False
    return frame


def _holidays(train: pd.DataFrame) -> pd.DataFrame:
    return train[["store", "date"]].drop_duplicates().assign(is_holiday=False)


def test_lags_and_rolling_statistics_by_hand() -> None:
    train = _train({(1, 1): [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]})
    out = build_sales_features(train, _holidays(train))
    assert len(out) == 10 and out["is_observed"].all()
    row = out.iloc[5]  # week index 5, sales 6; features may use 1..5 only
    assert row["weekly_sales"] == 6
    assert (row["sales_lag_1"], row["sales_lag_2"], row["sales_lag_4"]) == (5, 4, 2)
    assert np.isnan(row["sales_lag_52"])
    assert row["sales_rolling_mean_4"] == pytest.approx((2 + 3 + 4 + 5) / 4)
    assert row["sales_rolling_std_4"] == pytest.approx(np.std([2, 3, 4, 5], ddof=1))
    assert row["sales_rolling_mean_12"] == pytest.approx(3.0)  # only weeks 1..5 exist
    assert row["sales_rolling_std_12"] == pytest.approx(np.std([1, 2, 3, 4, 5], ddof=1))
    first = out.iloc[0]
    assert np.isnan(first["sales_lag_1"]) and np.isnan(first["sales_rolling_mean_4"])
    second = out.iloc[1]
    assert second["sales_rolling_mean_4"] == 1 and np.isnan(second["sales_rolling_std_4"])


def test_gap_is_explicit_and_lags_count_calendar_weeks() -> None:
    #           w0  w1  w2    w3    w4  w5  w6  w7
    series = [10, 20, None, None, 50, 60, 70, 80]
    train = _train({(2, 7): series})
    out = build_sales_features(train, _holidays(train)).reset_index(drop=True)
    assert list(out["is_observed"]) == [True, True, False, False, True, True, True, True]
    assert out["weekly_sales"].isna().sum() == 2  # missing weeks are not zero-filled
    w4 = out.loc[4]
    assert np.isnan(w4["sales_lag_1"]) and np.isnan(w4["sales_lag_2"])  # weeks 3 and 2 missing
    assert w4["sales_lag_4"] == 10
    assert w4["sales_rolling_mean_4"] == pytest.approx(15.0)  # weeks 0..3: 10 and 20 observed
    assert w4["sales_rolling_std_4"] == pytest.approx(np.std([10, 20], ddof=1))
    w3 = out.loc[3]  # an unobserved grid week still gets features from the weeks before it
    assert np.isnan(w3["weekly_sales"]) and np.isnan(w3["sales_lag_1"]) and w3["sales_lag_2"] == 20
    w5 = out.loc[5]  # window weeks 1..4: 20 and 50 observed
    assert w5["sales_rolling_mean_4"] == pytest.approx(35.0) and w5["sales_lag_1"] == 50
    w6 = out.loc[6]  # window weeks 2..5: 50, 60 observed
    assert w6["sales_rolling_mean_4"] == pytest.approx(55.0)
    assert w6["sales_rolling_std_4"] == pytest.approx(np.std([50, 60], ddof=1))
    assert w6["sales_rolling_mean_12"] == pytest.approx(np.mean([10, 20, 50, 60]))
    assert w6["sales_lag_2"] == 50 and np.isnan(w6["sales_lag_4"]) and w5["sales_lag_4"] == 20


def test_series_span_and_independence() -> None:
    """A grid runs from a series' first to last week; series never see each other's sales."""
    train = _train({(1, 1): [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], (1, 11): [None, None, 100, 200, 300]})
    out = build_sales_features(train, _holidays(train))
    late = out[out["dept"] == 11]
    assert len(late) == 3 and late["date"].min() == pd.Timestamp(WEEKS[2], tz="UTC")
    assert np.isnan(late.iloc[0]["sales_lag_1"])
    assert list(late["store_dept"].unique()) == [1011]
    assert set(out["store_dept"]) == {1001, 1011}


def test_no_leak_changing_week_t_changes_no_feature_at_or_before_t(synth_dir: Path) -> None:
    raw = load(synth_dir)
    before = build(raw).sales
    series = (raw.train["store"] == 3) & (raw.train["dept"] == raw.train["dept"].max())
    dates = raw.train.loc[series, "date"].sort_values()
    t = dates.iloc[60]
    changed = raw.train.copy()
    changed.loc[series & (changed["date"] == t), "weekly_sales"] += 1e6
    after = build_sales_features(changed, raw.features[["store", "date", "is_holiday"]])
    feature_cols = [c for c in before.columns if c.startswith("sales_")]
    t_utc = pd.Timestamp(t, tz="UTC")
    upto = before["date"] <= t_utc
    pd.testing.assert_frame_equal(before.loc[upto, feature_cols], after.loc[upto, feature_cols])
    # The change is visible afterwards, so the test can fail if features looked ahead.
    key = int(3 * 1000 + raw.train["dept"].max())
    next_week = (before["date"] == t_utc + pd.Timedelta(days=7)) & (before["store_dept"] == key)
    assert after.loc[next_week, "sales_lag_1"].item() == before.loc[next_week, "sales_lag_1"].item() + 1e6
    # Other series are untouched everywhere.
    other = before["store_dept"] != key
    pd.testing.assert_frame_equal(before.loc[other, feature_cols], after.loc[other, feature_cols])


def test_holiday_rules_match_the_kaggle_holiday_weeks() -> None:
    kaggle = {
        "super_bowl": ["2010-02-12", "2011-02-11", "2012-02-10", "2013-02-08"],
        "labor_day": ["2010-09-10", "2011-09-09", "2012-09-07", "2013-09-06"],
        "thanksgiving": ["2010-11-26", "2011-11-25", "2012-11-23", "2013-11-29"],
        "christmas": ["2010-12-31", "2011-12-30", "2012-12-28", "2013-12-27"],
    }
    weeks = holiday_weeks(2010, 2013)
    for name, dates in kaggle.items():
        got = weeks.loc[weeks["holiday"] == name, "date"].dt.strftime("%Y-%m-%d").tolist()
        assert got == dates, name


def test_calendar_features() -> None:
    dates = pd.to_datetime(["2010-11-12", "2010-11-26", "2010-12-03", "2011-01-07"])
    cal = calendar_features(dates)
    assert cal["weeks_to_next_holiday"].tolist() == [2, 0, 4, 5]
    assert cal["holiday_type"].tolist() == [0, HOLIDAY_CODES["thanksgiving"], 0, 0]
    assert cal["month"].tolist() == [11, 11, 12, 1]
    assert cal["week_of_year"].tolist() == [45, 47, 48, 1]


def test_store_features_markdowns_and_economy(synth_dir: Path) -> None:
    raw = load(synth_dir)
    out = build_store_features(raw.features, raw.stores)
    assert len(out) == len(raw.features)
    md = [f"markdown{i}" for i in range(1, 6)]
    assert not out[md].isna().any().any()
    early = out["date"] < pd.Timestamp("2011-11-11", tz="UTC")
    assert not out.loc[early, "has_markdown"].any() and (out.loc[early, "total_markdown"] == 0).all()
    assert out.loc[~early, "has_markdown"].mean() > 0.9
    np.testing.assert_allclose(out["total_markdown"], out[md].sum(axis=1))
    assert set(out["store_type"]) <= {0, 1, 2}
    assert out["is_holiday"].sum() == 5 * raw.features["date"][raw.features["is_holiday"]].nunique()
