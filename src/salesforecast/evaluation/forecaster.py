"""The one interface every model is evaluated through: baselines now, the TFT later.

The harness owns the data cut: `fit` and `forecast` only ever receive `Panel.until(origin)`,
so a forecaster cannot see a week dated on or after its origin (the leak test checks this).

A forecaster has:
- `name`, `has_quantiles` (returns p10/p90 besides p50), `refit_every_origin` (a cheap local
  method re-estimated at every origin, as it would be in use, whatever the retraining schedule);
- `fit(history)`: (re)train on the visible history, called at each retraining point;
- `forecast(history, origin, horizon)`: a long frame with columns store, dept, h (1..horizon),
  target_date (= origin + 7 * (h - 1) days), p50 and, if `has_quantiles`, p10 and p90; one row
  per series it can forecast (series it leaves out are scored as a forecast of 0, and counted);
- `describe()`: name, parameters and version, for the report.
Optionally `trained_until` (the last week of data it was trained on; checked against every
origin) and `interpretation()` (`{"variable_importance": {group: {variable: weight}},
"attention": [mean weight per encoder week, oldest first]}`, drawn by the report).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from salesforecast.errors import SalesForecastError
from salesforecast.evaluation.protocols import Panel, naive_dates

FORECAST_COLUMNS = ["store", "dept", "h", "target_date", "p50"]


@runtime_checkable
class Forecaster(Protocol):
    name: str
    has_quantiles: bool
    refit_every_origin: bool

    def fit(self, history: Panel) -> None: ...

    def forecast(self, history: Panel, origin: pd.Timestamp, horizon: int) -> pd.DataFrame: ...

    def describe(self) -> dict[str, Any]: ...


def forecast_frame(
    keys: pd.DataFrame,
    origin: pd.Timestamp,
    p50: np.ndarray,
    p10: np.ndarray | None = None,
    p90: np.ndarray | None = None,
) -> pd.DataFrame:
    """Long forecast frame from series x step arrays; series with a NaN p50 are left out."""
    horizon = p50.shape[1]
    keep = ~np.isnan(p50).any(axis=1)
    rows = np.repeat(np.flatnonzero(keep), horizon)
    steps = np.tile(np.arange(horizon), int(keep.sum()))
    out = pd.DataFrame(
        {
            "store": keys["store"].to_numpy()[rows],
            "dept": keys["dept"].to_numpy()[rows],
            "h": (steps + 1).astype("int32"),
            "target_date": pd.DatetimeIndex(origin + pd.to_timedelta(7 * steps, unit="D")),
            "p50": p50[rows, steps],
        }
    )
    if p10 is not None and p90 is not None:
        out["p10"] = p10[rows, steps]
        out["p90"] = p90[rows, steps]
    return out


def validate_forecast(
    frame: pd.DataFrame, model: Forecaster, origin: pd.Timestamp, horizon: int
) -> pd.DataFrame:
    """Check a forecaster's output against the contract; name the model and origin when it breaks it."""
    where = f"model {model.name!r}, origin {origin.date()}"
    wanted = FORECAST_COLUMNS + (["p10", "p90"] if model.has_quantiles else [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise SalesForecastError(f"{where}: forecast lacks columns {missing} (expected {wanted})")
    out = frame[wanted].copy()
    out["target_date"] = naive_dates(out["target_date"])
    out["h"] = out["h"].astype("int32")
    bad_h = (out["h"] < 1) | (out["h"] > horizon)
    if bad_h.any():
        raise SalesForecastError(f"{where}: step h={out['h'][bad_h].iloc[0]} outside 1..{horizon}")
    expected = origin + pd.to_timedelta(7 * (out["h"].to_numpy() - 1), unit="D")
    if (out["target_date"].to_numpy() != expected.to_numpy()).any():
        raise SalesForecastError(f"{where}: target_date must be origin + 7 * (h - 1) days")
    if out.duplicated(["store", "dept", "h"]).any():
        raise SalesForecastError(f"{where}: more than one forecast for a store, dept and step")
    values = out[[c for c in ("p50", "p10", "p90") if c in out]].to_numpy(dtype="float64")
    if not np.isfinite(values).all():
        raise SalesForecastError(f"{where}: forecasts must be finite numbers (found NaN or inf)")
    return out
