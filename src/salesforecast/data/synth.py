"""A deterministic synthetic panel in exactly the Kaggle schema, for the demo and for tests.

Sales combine store and department scale, yearly seasonality, holiday peaks (Thanksgiving and
the weeks before Christmas), a slow trend, markdown lift from Nov 2011 and noise; some series
start late or have gaps, and a few weeks have returns (negative sales), as in the real data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from salesforecast.features.calendar import holiday_weeks
from salesforecast.offline.files import atomic_write

FIRST_WEEK = pd.Timestamp("2010-02-05")
MARKDOWN_START = pd.Timestamp("2011-11-11")
TEST_WEEKS = 39


def _fmt(values: np.ndarray, decimals: int = 2) -> pd.Series:
    text = pd.Series(np.round(values, decimals)).map(lambda v: f"{v:.{decimals}f}")
    return text.where(~np.isnan(values), "NA")


def _flag(values: np.ndarray) -> np.ndarray:
    return np.where(values, "TRUE", "FALSE")


def generate(stores: int = 5, depts: int = 10, weeks: int = 143, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Return the four Kaggle files as text-valued frames (what would be written to CSV)."""
    rng = np.random.default_rng(seed)
    all_dates = pd.date_range(FIRST_WEEK, periods=weeks + TEST_WEEKS, freq="7D")
    train_dates = all_dates[:weeks]
    holiday = holiday_weeks(all_dates.year.min(), all_dates.year.max())
    is_holiday = all_dates.isin(holiday["date"])
    thanksgiving = all_dates.isin(holiday.loc[holiday["holiday"] == "thanksgiving", "date"])
    doy = all_dates.dayofyear.to_numpy()
    pre_christmas = (all_dates.month == 12) & (all_dates.day >= 10) & (all_dates.day <= 24)

    store_ids = np.arange(1, stores + 1)
    dept_ids = np.sort(rng.choice(np.arange(1, 100), size=depts, replace=False))
    types = rng.choice(["A", "B", "C"], size=stores, p=[0.5, 0.35, 0.15])
    sizes = np.where(types == "A", 150_000, np.where(types == "B", 100_000, 40_000))
    sizes = (sizes * rng.uniform(0.7, 1.3, stores)).astype(int)

    # Store-week external facts.
    n_all = len(all_dates)
    temp = 60 + 25 * np.sin(2 * np.pi * (doy - 100) / 365.25)[None, :] + rng.normal(0, 5, (stores, n_all))
    fuel = 2.7 + 0.5 * np.linspace(0, 1, n_all)[None, :] + rng.normal(0, 0.05, (stores, n_all))
    cpi = rng.uniform(125, 225, stores)[:, None] * (1 + 0.0004 * np.arange(n_all))[None, :]
    unemp = rng.uniform(4, 11, stores)[:, None] + rng.normal(0, 0.05, (stores, n_all)).cumsum(1) * 0.1
    md_active = np.asarray(all_dates >= MARKDOWN_START)[None, :, None]
    markdowns = rng.gamma(1.5, 3000, (stores, n_all, 5)) * (1 + 3 * is_holiday[None, :, None])
    markdowns = np.where(md_active & (rng.random((stores, n_all, 5)) > 0.1), markdowns, np.nan)

    # Sales per store x dept x week.
    store_scale = sizes / 100_000
    dept_scale = rng.lognormal(9.3, 0.9, depts)
    season_phase = rng.uniform(0, 2 * np.pi, depts)
    season = 1 + 0.15 * np.sin(2 * np.pi * doy[None, :] / 365.25 + season_phase[:, None])
    peak = 1 + 0.6 * thanksgiving + 0.45 * pre_christmas + 0.08 * is_holiday
    trend = 1 + 0.03 * np.arange(n_all) / 52
    md_total = np.nan_to_num(markdowns).sum(axis=2) / 1e5
    level = (
        store_scale[:, None, None]
        * dept_scale[None, :, None]
        * season[None, :, :]
        * (peak * trend)[None, None, :]
        * (1 + 0.05 * md_total[:, None, :])
    )
    noise = rng.normal(1, 0.06, level.shape)
    sales = level * noise
    returns = rng.random(sales.shape) < 0.003
    sales = np.where(returns, -rng.uniform(1, 500, sales.shape), sales)

    # Some series start late, some have missing weeks.
    present = np.ones(sales.shape, dtype=bool)
    late = rng.random((stores, depts)) < 0.1
    start = np.where(late, rng.integers(10, max(11, weeks // 2), (stores, depts)), 0)
    present &= np.arange(n_all)[None, None, :] >= start[:, :, None]
    present &= rng.random(sales.shape) > 0.01
    present[:, :, weeks:] = False

    s_idx, d_idx, w_idx = np.nonzero(present)
    train = pd.DataFrame(
        {
            "Store": store_ids[s_idx].astype(str),
            "Dept": dept_ids[d_idx].astype(str),
            "Date": train_dates[w_idx].strftime("%Y-%m-%d"),
            "Weekly_Sales": _fmt(sales[s_idx, d_idx, w_idx]).to_numpy(),
            "IsHoliday": _flag(is_holiday[w_idx]),
        }
    )
    fs, fw = np.meshgrid(np.arange(stores), np.arange(n_all), indexing="ij")
    fs, fw = fs.ravel(), fw.ravel()
    features = pd.DataFrame(
        {
            "Store": store_ids[fs].astype(str),
            "Date": all_dates[fw].strftime("%Y-%m-%d"),
            "Temperature": _fmt(temp[fs, fw]).to_numpy(),
            "Fuel_Price": _fmt(fuel[fs, fw], 3).to_numpy(),
            **{f"MarkDown{i + 1}": _fmt(markdowns[fs, fw, i]).to_numpy() for i in range(5)},
            "CPI": _fmt(cpi[fs, fw], 7).to_numpy(),
            "Unemployment": _fmt(unemp[fs, fw], 3).to_numpy(),
            "IsHoliday": _flag(is_holiday[fw]),
        }
    )
    stores_frame = pd.DataFrame({"Store": store_ids.astype(str), "Type": types, "Size": sizes.astype(str)})
    ts, td, tw = np.meshgrid(np.arange(stores), np.arange(depts), np.arange(weeks, n_all), indexing="ij")
    ts, td, tw = ts.ravel(), td.ravel(), tw.ravel()
    test = pd.DataFrame(
        {
            "Store": store_ids[ts].astype(str),
            "Dept": dept_ids[td].astype(str),
            "Date": all_dates[tw].strftime("%Y-%m-%d"),
            "IsHoliday": _flag(is_holiday[tw]),
        }
    )
    return {"train": train, "features": features, "stores": stores_frame, "test": test}


# Written next to the files, so that reports made from them can say the data are not real.
MARKER = "SYNTHETIC.txt"
MARKER_TEXT = (
    "These files were generated by `salesforecast data synth`: synthetic sales in the Kaggle schema,\n"
    "for demos and tests. Figures computed from them say nothing about forecasting real sales.\n"
)


def write(out_dir: Path, frames: dict[str, pd.DataFrame]) -> dict[str, Path]:
    """Write the files as Kaggle ships them; stores.csv keeps its bare CR line endings."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in frames.items():
        terminator = "\r" if name == "stores" else "\n"
        text = frame.to_csv(index=False, lineterminator=terminator)
        if name == "stores":
            text = text.rstrip("\r")
        paths[name] = atomic_write(out_dir / f"{name}.csv", lambda tmp, t=text: tmp.write_text(t))
    atomic_write(out_dir / MARKER, lambda tmp: tmp.write_text(MARKER_TEXT))
    return paths
