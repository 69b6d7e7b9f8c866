"""Forecast accuracy metrics, pooled or per group (horizon step, fold, model), vectorised.

Each metric is a ratio of sums of per-row terms, so one definition (`_terms` and `_finish`)
serves a single set of rows and any grouping alike. Rows are store-dept-weeks present in the
data; a forecast of NaN is an error upstream, never silently skipped.

- WMAE: the competition metric, sum(w * |e|) / sum(w) with w = 5 on holiday weeks, 1 otherwise.
- WAPE: sum|e| / sum|actual|.
- MAPE: mean of |e| / |actual| over rows with |actual| >= $1,000 only (small and negative
  actuals would make it meaningless); always labelled so.
- MAE, RMSE; pinball loss at P10/P50/P90 (mean over rows); coverage: the share of actuals with
  P10 <= actual <= P90. Quantile metrics are NaN for a model without P10/P90.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

HOLIDAY_WEIGHT = 5.0
MAPE_MIN_ACTUAL = 1_000.0
QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}
METRICS = (
    "wmae",
    "wape",
    "mape",
    "mae",
    "rmse",
    "pinball_p10",
    "pinball_p50",
    "pinball_p90",
    "coverage_p10_p90",
)
LABELS = {
    "wmae": "WMAE",
    "wape": "WAPE",
    "mape": "MAPE (|actual| ≥ $1,000)",
    "mae": "MAE",
    "rmse": "RMSE",
    "pinball_p10": "pinball P10",
    "pinball_p50": "pinball P50",
    "pinball_p90": "pinball P90",
    "coverage_p10_p90": "P10-P90 coverage",
}
FRACTIONS = {"wape", "mape", "coverage_p10_p90"}


def _pinball(actual: np.ndarray, pred: np.ndarray, q: float) -> np.ndarray:
    error = actual - pred
    return np.maximum(q * error, (q - 1.0) * error)


def _terms(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-row summands of every metric."""
    actual = frame["actual"].to_numpy(dtype="float64")
    p50 = frame["p50"].to_numpy(dtype="float64")
    if np.isnan(actual).any() or np.isnan(p50).any():
        raise ValueError("metrics need an actual and a p50 forecast on every row (found NaN)")
    weight = np.where(frame["is_holiday"].to_numpy(dtype=bool), HOLIDAY_WEIGHT, 1.0)
    abs_error = np.abs(actual - p50)
    abs_actual = np.abs(actual)
    in_mape = abs_actual >= MAPE_MIN_ACTUAL
    nan = np.full(len(frame), np.nan)
    p10 = frame["p10"].to_numpy(dtype="float64") if "p10" in frame else nan
    p90 = frame["p90"].to_numpy(dtype="float64") if "p90" in frame else nan
    has_band = ~np.isnan(p10) & ~np.isnan(p90)
    return pd.DataFrame(
        {
            "n": 1.0,
            "weight": weight,
            "weighted_abs_error": weight * abs_error,
            "abs_error": abs_error,
            "abs_actual": abs_actual,
            "squared_error": abs_error**2,
            "mape_rows": in_mape.astype("float64"),
            "mape_sum": np.where(in_mape, abs_error / np.where(in_mape, abs_actual, 1.0), 0.0),
            "pinball_p10": np.where(has_band, _pinball(actual, p10, 0.1), 0.0),
            "pinball_p50": _pinball(actual, p50, 0.5),
            "pinball_p90": np.where(has_band, _pinball(actual, p90, 0.9), 0.0),
            "band_rows": has_band.astype("float64"),
            "inside": (has_band & (p10 <= actual) & (actual <= p90)).astype("float64"),
        },
        index=frame.index,
    )


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return num / den.where(den > 0)


def _finish(sums: pd.DataFrame) -> pd.DataFrame:
    """Metrics from summed terms (one row per group)."""
    out = pd.DataFrame(index=sums.index)
    out["wmae"] = _ratio(sums["weighted_abs_error"], sums["weight"])
    out["wape"] = _ratio(sums["abs_error"], sums["abs_actual"])
    out["mape"] = _ratio(sums["mape_sum"], sums["mape_rows"])
    out["mae"] = _ratio(sums["abs_error"], sums["n"])
    out["rmse"] = np.sqrt(_ratio(sums["squared_error"], sums["n"]))
    out["pinball_p10"] = _ratio(sums["pinball_p10"], sums["band_rows"])
    out["pinball_p50"] = _ratio(sums["pinball_p50"], sums["n"])
    out["pinball_p90"] = _ratio(sums["pinball_p90"], sums["band_rows"])
    out["coverage_p10_p90"] = _ratio(sums["inside"], sums["band_rows"])
    out["rows"] = sums["n"].astype("int64")
    out["mape_rows"] = sums["mape_rows"].astype("int64")
    return out


def score_frame(frame: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Every metric per group of `by` (pooled when empty) for rows with actual, p50, is_holiday[, p10, p90].

    P10/P90 metrics are over the rows that have both quantiles (NaN for a point-forecast model).
    """
    terms = _terms(frame)
    sums = terms.groupby([frame[c] for c in by], sort=True).sum() if by else terms.sum().to_frame().T
    return _finish(sums)


def score(
    actual: Sequence[float] | np.ndarray,
    p50: Sequence[float] | np.ndarray,
    is_holiday: Sequence[bool] | np.ndarray,
    p10: Sequence[float] | np.ndarray | None = None,
    p90: Sequence[float] | np.ndarray | None = None,
) -> dict[str, float]:
    """All metrics for one set of rows, as plain floats (NaN where undefined)."""
    frame = pd.DataFrame({"actual": actual, "p50": p50, "is_holiday": is_holiday})
    if p10 is not None:
        frame["p10"] = p10
    if p90 is not None:
        frame["p90"] = p90
    row = score_frame(frame).iloc[0]
    return {k: float(v) for k, v in row.items()}


def wmae(actual: np.ndarray, pred: np.ndarray, is_holiday: np.ndarray) -> float:
    return score(actual, pred, is_holiday)["wmae"]


def wape(actual: np.ndarray, pred: np.ndarray) -> float:
    return score(actual, pred, np.zeros(len(actual), dtype=bool))["wape"]


def mape(actual: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute percentage error (as a fraction) over rows with |actual| >= $1,000."""
    return score(actual, pred, np.zeros(len(actual), dtype=bool))["mape"]


def pinball(actual: np.ndarray, pred: np.ndarray, q: float) -> float:
    """Mean pinball (quantile) loss of the `q` quantile forecast `pred`."""
    return float(np.mean(_pinball(np.asarray(actual, float), np.asarray(pred, float), q)))


def mean_of_folds(frame: pd.DataFrame) -> float:
    """The course's backtest score: the plain mean of the per-fold WMAEs."""
    return float(score_frame(frame, by=["fold"])["wmae"].mean())


def as_dict(table: pd.DataFrame) -> dict[str, dict[str, float | int | None]]:
    """A metrics table (one row per group) as JSON-ready nested dicts, NaN -> None."""
    out: dict[str, dict[str, float | int | None]] = {}
    for key, row in table.iterrows():
        out[str(key)] = {
            name: (None if pd.isna(value) else (int(value) if name.endswith("rows") else float(value)))
            for name, value in row.items()
        }
    return out
