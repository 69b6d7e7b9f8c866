"""Metric functions on hand-computed cases: holiday weights, the |actual| >= $1,000 MAPE filter,
negative actuals, quantile losses and coverage, and grouped versus pooled scoring."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from salesforecast.evaluation import metrics


def test_wmae_weighs_holiday_weeks_five_times() -> None:
    # errors 10, 20, 0 with weights 1, 5, 1: (10 + 100 + 0) / 7
    value = metrics.wmae(
        np.array([100.0, 200, 300]), np.array([110.0, 180, 300]), np.array([False, True, False])
    )
    assert value == pytest.approx(110 / 7)
    plain = metrics.wmae(np.array([100.0, 200, 300]), np.array([110.0, 180, 300]), np.zeros(3, bool))
    assert plain == pytest.approx(10.0)


def test_mape_only_counts_rows_with_actual_at_least_1000_in_absolute_value() -> None:
    actual = np.array([500.0, 1000, -2000, 4000, 999.99])
    pred = np.array([0.0, 1100, -1000, 3000, 0])
    # kept: 1000 (0.1), -2000 (0.5), 4000 (0.25); 500 and 999.99 are left out
    assert metrics.mape(actual, pred) == pytest.approx((0.1 + 0.5 + 0.25) / 3)
    result = metrics.score(actual, pred, np.zeros(5, bool))
    assert result["mape_rows"] == 3
    assert math.isnan(metrics.mape(np.array([10.0, -20]), np.array([0.0, 0])))  # no eligible row


def test_wape_mae_rmse_with_negative_actuals() -> None:
    actual, pred = np.array([-100.0, 300]), np.array([100.0, 200])
    result = metrics.score(actual, pred, np.zeros(2, bool))
    assert result["wape"] == pytest.approx(300 / 400)  # sum|e| / sum|actual|
    assert result["mae"] == pytest.approx(150.0)
    assert result["rmse"] == pytest.approx(math.sqrt((200**2 + 100**2) / 2))
    assert result["rows"] == 2


def test_pinball_and_coverage() -> None:
    assert metrics.pinball(np.array([100.0]), np.array([90.0]), 0.1) == pytest.approx(1.0)
    assert metrics.pinball(np.array([100.0]), np.array([90.0]), 0.9) == pytest.approx(9.0)
    assert metrics.pinball(np.array([100.0]), np.array([110.0]), 0.1) == pytest.approx(9.0)
    actual = np.array([100.0, 50, 200, 90])
    p50 = np.array([100.0, 100, 100, 100])
    p10 = np.array([90.0, 60, 80, 90])
    p90 = np.array([110.0, 120, 150, 95])
    result = metrics.score(actual, p50, np.zeros(4, bool), p10, p90)
    assert result["coverage_p10_p90"] == pytest.approx(2 / 4)  # 100 inside, 90 on the edge counts
    assert result["pinball_p10"] == pytest.approx((1.0 + 9.0 + 12.0 + 0.0) / 4)
    assert result["pinball_p90"] == pytest.approx((1.0 + 7.0 + 45.0 + 0.5) / 4)
    assert result["pinball_p50"] == pytest.approx(result["mae"] / 2)


def test_point_forecasts_have_no_quantile_metrics() -> None:
    result = metrics.score(np.array([1.0, 2.0]), np.array([1.0, 1.0]), np.zeros(2, bool))
    assert math.isnan(result["pinball_p10"]) and math.isnan(result["coverage_p10_p90"])
    assert not math.isnan(result["pinball_p50"])


def test_grouped_scores_equal_scoring_each_group_alone() -> None:
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame(
        {
            "h": rng.integers(1, 4, n),
            "actual": rng.normal(5000, 3000, n),
            "p50": rng.normal(5000, 3000, n),
            "is_holiday": rng.random(n) < 0.2,
        }
    )
    frame["p10"], frame["p90"] = frame["p50"] - 1000, frame["p50"] + 1000
    grouped = metrics.score_frame(frame, by=["h"])
    for h, part in frame.groupby("h"):
        alone = metrics.score(part["actual"], part["p50"], part["is_holiday"], part["p10"], part["p90"])
        for name in metrics.METRICS:
            assert grouped.loc[h, name] == pytest.approx(alone[name])
    pooled = metrics.score_frame(frame).iloc[0]
    assert pooled["rows"] == n
    assert pooled["wmae"] != pytest.approx(grouped["wmae"].mean())  # pooled is not a mean of groups


def test_backtest_score_is_the_plain_mean_of_fold_wmaes() -> None:
    frame = pd.DataFrame(
        {
            "fold": [1, 2, 2, 2],
            "actual": [0.0, 0, 0, 0],
            "p50": [100.0, 10, 10, 10],
            "is_holiday": [False] * 4,
        }
    )
    assert metrics.mean_of_folds(frame) == pytest.approx((100 + 10) / 2)  # pooled would be 32.5


def test_missing_forecast_is_an_error_not_skipped() -> None:
    with pytest.raises(ValueError, match="NaN"):
        metrics.score(np.array([1.0, 2.0]), np.array([1.0, np.nan]), np.zeros(2, bool))


def test_as_dict_turns_nan_into_none() -> None:
    table = metrics.score_frame(pd.DataFrame({"actual": [1.0], "p50": [2.0], "is_holiday": [True]}))
    out = metrics.as_dict(table)["0"]
    assert out["wmae"] == pytest.approx(1.0) and out["coverage_p10_p90"] is None and out["rows"] == 1
