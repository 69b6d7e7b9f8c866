"""Build the two offline tables, `sales_features` and `store_features`, from validated raw data.

`sales_features` has one row per series and week on a complete weekly grid from the series'
first to its last observed week; weeks without a row in train keep `weekly_sales` NULL and
`is_observed` false. `store_features` has one row per store and week of features.csv.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from salesforecast.data.ingest import RawData
from salesforecast.data.schema import MARKDOWNS
from salesforecast.features.calendar import calendar_features
from salesforecast.features.transforms import SALES_TRANSFORMS

WEEK = np.timedelta64(7, "D")
SALES_FEATURES = list(SALES_TRANSFORMS)
STORE_TYPE_CODES = {"A": 0, "B": 1, "C": 2}


def series_key(store: pd.Series | np.ndarray, dept: pd.Series | np.ndarray) -> np.ndarray:
    """One integer key per (store, dept): Feast joins on it without ambiguity."""
    return np.asarray(store, dtype="int64") * 1000 + np.asarray(dept, dtype="int64")


@dataclass
class FeatureTables:
    sales: pd.DataFrame
    store: pd.DataFrame


def _utc(dates: pd.Series | np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(dates)).dt.tz_localize("UTC").astype("datetime64[us, UTC]")


def build_sales_features(train: pd.DataFrame, holidays: pd.DataFrame) -> pd.DataFrame:
    """Lags and rolling statistics per series on the dense weekly grid (vectorised)."""
    keys = series_key(train["store"], train["dept"])
    series_ids, series_idx = np.unique(keys, return_inverse=True)
    dates = train["date"].to_numpy(dtype="datetime64[ns]")
    start = dates.min()
    week_idx = ((dates - start) // WEEK).astype(np.int64)
    n_series, n_weeks = len(series_ids), int(week_idx.max()) + 1

    panel = np.full((n_series, n_weeks), np.nan)
    panel[series_idx, week_idx] = train["weekly_sales"].to_numpy(dtype="float64")
    observed = np.zeros((n_series, n_weeks), dtype=bool)
    observed[series_idx, week_idx] = True

    first = np.full(n_series, n_weeks)
    np.minimum.at(first, series_idx, week_idx)
    last = np.zeros(n_series, dtype=np.int64)
    np.maximum.at(last, series_idx, week_idx)
    weeks = np.arange(n_weeks)
    in_span = (weeks >= first[:, None]) & (weeks <= last[:, None])
    rows, cols = np.nonzero(in_span)  # row-major: sorted by series, then week

    key = series_ids[rows]
    out = pd.DataFrame(
        {
            "store_dept": key,
            "store": (key // 1000).astype("int32"),
            "dept": (key % 1000).astype("int32"),
            "date": _utc(start + cols * WEEK),
            "weekly_sales": panel[rows, cols],
            "is_observed": observed[rows, cols],
        }
    )
    for name, transform in SALES_TRANSFORMS.items():
        out[name] = transform(panel)[rows, cols]
    flags = holidays.assign(date=_utc(holidays["date"]))
    out = out.merge(flags, on=["store", "date"], how="left", validate="many_to_one")
    out["is_holiday"] = out["is_holiday"].astype("boolean").fillna(False).astype(bool)
    return out


def build_store_features(features: pd.DataFrame, stores: pd.DataFrame) -> pd.DataFrame:
    """Store-week facts: calendar, store type and size, economy and markdowns."""
    frame = features.sort_values(["store", "date"], ignore_index=True)
    markdowns = frame[MARKDOWNS]
    out = frame[["store", "date", "is_holiday"]].copy()
    out["store"] = out["store"].astype("int32")
    cal = calendar_features(frame["date"])
    out = pd.concat([out, cal], axis=1)
    meta = stores.set_index("store")
    out["store_type"] = frame["store"].map(meta["type"].map(STORE_TYPE_CODES)).astype("int8")
    out["store_size"] = frame["store"].map(meta["size"]).astype("int64")
    out["temperature"] = frame["temperature"]
    out["fuel_price"] = frame["fuel_price"]
    # CPI and unemployment are published with a lag; carry the last published value forward.
    for col in ("cpi", "unemployment"):
        out[col] = frame.groupby("store")[col].ffill()
    for col in MARKDOWNS:
        out[col] = markdowns[col].fillna(0.0)
    out["has_markdown"] = markdowns.notna().any(axis=1)
    out["total_markdown"] = markdowns.fillna(0.0).sum(axis=1)
    out["date"] = _utc(out["date"])
    return out


def build(raw: RawData) -> FeatureTables:
    holidays = raw.features[["store", "date", "is_holiday"]]
    return FeatureTables(
        sales=build_sales_features(raw.train, holidays),
        store=build_store_features(raw.features, raw.stores),
    )
