"""The evaluation protocols as data: which origins, which target weeks, what a model may see.

Every model is scored on exactly the rows `Protocol.targets` lists, and is only ever handed
`Panel.until(origin)`, the sales dated strictly before its forecast origin.

Conventions: a forecast *origin* is the first week forecast; step h = 1..H targets the week
`origin + 7 * (h - 1)` days, so h = 1 is the origin week itself and the last visible week is
`origin - 7 days`. This makes a backtest fold's origin its first week, and makes every holdout
test week the h = 1 target of the origin of the same date.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from salesforecast.errors import SalesForecastError

WEEK = pd.Timedelta(days=7)
HOLDOUT_START = pd.Timestamp("2012-02-03")
HOLDOUT_END = pd.Timestamp("2012-10-26")
BACKTEST_FIRST_MONTH = pd.Timestamp("2011-03-01")
BACKTEST_FOLDS = 10
FOLD_MONTHS = 2
KEY = ["store", "dept"]

ProtocolName = Literal["holdout", "backtest"]


def naive_dates(values: Any) -> pd.DatetimeIndex:
    """Dates as tz-naive midnight timestamps (UTC-aware inputs, as in the offline store, are converted)."""
    idx = pd.DatetimeIndex(pd.to_datetime(values))
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.normalize()


@dataclass(frozen=True)
class Panel:
    """Weekly sales on a dense series x week grid: NaN where a store-dept-week is absent.

    `keys` holds one (store, dept) row per series in the order of `sales`' rows; `dates` are
    consecutive weeks; `holiday` is the Kaggle holiday flag of each week (known in advance).
    """

    keys: pd.DataFrame
    dates: pd.DatetimeIndex
    sales: np.ndarray
    holiday: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Panel:
        """Build from a long frame with columns store, dept, date, weekly_sales, is_holiday."""
        missing = {"store", "dept", "date", "weekly_sales", "is_holiday"} - set(frame.columns)
        if missing:
            raise SalesForecastError(f"sales frame lacks columns {sorted(missing)}")
        if frame.empty:
            raise SalesForecastError("sales frame is empty: nothing to evaluate")
        dates = naive_dates(frame["date"])
        if (dates.dayofweek != dates[0].dayofweek).any():
            raise SalesForecastError("sales dates are not all the same weekday (expected weekly data)")
        grid = pd.date_range(dates.min(), dates.max(), freq="7D")
        keys = frame[KEY].drop_duplicates().sort_values(KEY, ignore_index=True).astype("int64")
        row = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(frame[KEY].astype("int64")))
        col = grid.get_indexer(dates)
        flat = row * len(grid) + col
        if len(np.unique(flat)) != len(flat):
            raise SalesForecastError("sales frame has duplicate (store, dept, date) rows")
        sales = np.full((len(keys), len(grid)), np.nan)
        sales[row, col] = frame["weekly_sales"].to_numpy(dtype="float64")
        holiday = np.zeros(len(grid), dtype=bool)
        np.logical_or.at(holiday, col, frame["is_holiday"].to_numpy(dtype=bool))
        return cls(keys=keys, dates=grid, sales=sales, holiday=holiday)

    @property
    def observed(self) -> np.ndarray:
        return ~np.isnan(self.sales)

    def until(self, origin: pd.Timestamp) -> Panel:
        """What a model may see when forecasting from `origin`: weeks before it, series seen by then."""
        width = int(np.searchsorted(self.dates.to_numpy(), np.datetime64(origin), side="left"))
        sales = self.sales[:, :width]
        seen = (~np.isnan(sales)).any(axis=1)
        return Panel(
            keys=self.keys.loc[seen].reset_index(drop=True),
            dates=self.dates[:width],
            sales=sales[seen],
            holiday=self.holiday[:width],
        )

    def to_frame(self) -> pd.DataFrame:
        """The observed rows as a long frame (store, dept, date, weekly_sales, is_holiday)."""
        row, col = np.nonzero(self.observed)
        return pd.DataFrame(
            {
                "store": self.keys["store"].to_numpy()[row],
                "dept": self.keys["dept"].to_numpy()[row],
                "date": self.dates[col],
                "weekly_sales": self.sales[row, col],
                "is_holiday": self.holiday[col],
            }
        )


@dataclass(frozen=True)
class Window:
    """One forecast origin: the model sees data dated before `origin` and forecasts `horizon` weeks."""

    origin: pd.Timestamp
    horizon: int
    fold: int  # 1-based: the backtest fold, or the origin's number in the holdout

    def target_dates(self) -> pd.DatetimeIndex:
        return pd.date_range(self.origin, periods=self.horizon, freq="7D")


@dataclass(frozen=True)
class Protocol:
    name: ProtocolName
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    horizon: int  # the longest step forecast from any origin
    windows: tuple[Window, ...]
    description: str

    @property
    def score_name(self) -> str:
        """The headline figure: the course's mean of fold WMAEs, or the holdout's pooled WMAE."""
        return "wmae_mean_of_folds" if self.name == "backtest" else "wmae"

    def describe(self) -> dict[str, Any]:
        return {
            "protocol": self.name,
            "description": self.description,
            "test_period": {
                "start": str(self.test_start.date()),
                "end": str(self.test_end.date()),
                "weeks": int((self.test_end - self.test_start) / WEEK) + 1,
            },
            "horizon": self.horizon,
            "origins": len(self.windows),
            "folds": [
                {
                    "fold": w.fold,
                    "origin": str(w.origin.date()),
                    "last": str(w.target_dates()[-1].date()),
                    "weeks": w.horizon,
                }
                for w in self.windows
            ]
            if self.name == "backtest"
            else None,
            "score": self.score_name,
        }

    def check(self, panel: Panel) -> None:
        """The data must cover the test period and hold history before the first origin."""
        first, last = panel.dates[0], panel.dates[-1]
        if self.windows[0].origin <= first:
            raise SalesForecastError(
                f"{self.name}: the data start {first.date()}, but the first forecast origin "
                f"{self.windows[0].origin.date()} needs history before it"
            )
        if last < self.test_end:
            raise SalesForecastError(
                f"{self.name}: the data end {last.date()}, before the end of the test period "
                f"{self.test_end.date()} (expected weekly sales up to then)"
            )
        if self.test_start not in panel.dates:
            raise SalesForecastError(
                f"{self.name}: the test period starts {self.test_start.date()}, which is not a week "
                f"of the data (weeks are labelled {first.day_name()})"
            )

    def targets(self, panel: Panel) -> pd.DataFrame:
        """Every scored row: the present store-dept-weeks of each window's target weeks."""
        parts = []
        for w in self.windows:
            cols = panel.dates.get_indexer(w.target_dates())
            cols = cols[(cols >= 0) & (panel.dates[np.maximum(cols, 0)] <= self.test_end)]
            row, j = np.nonzero(panel.observed[:, cols])
            col = cols[j]
            parts.append(
                pd.DataFrame(
                    {
                        "fold": np.full(len(row), w.fold, dtype="int32"),
                        "origin_date": np.full(len(row), np.datetime64(w.origin, "ns")),
                        "target_date": panel.dates[col],
                        "h": (col - cols[0] + 1).astype("int32"),
                        "store": panel.keys["store"].to_numpy()[row],
                        "dept": panel.keys["dept"].to_numpy()[row],
                        "actual": panel.sales[row, col],
                        "is_holiday": panel.holiday[col],
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)


def holdout(
    horizon: int = 8, start: pd.Timestamp = HOLDOUT_START, end: pd.Timestamp = HOLDOUT_END
) -> Protocol:
    """Every test week is an origin; from each, steps 1..H that fall inside the test period."""
    if horizon < 1:
        raise SalesForecastError(f"holdout horizon {horizon}: expected at least 1 week")
    origins = pd.date_range(start, end, freq="7D")
    windows = tuple(
        Window(origin=o, horizon=min(horizon, int((end - o) / WEEK) + 1), fold=i + 1)
        for i, o in enumerate(origins)
    )
    text = (
        f"holdout: origins every week {start.date()}..{end.date()}; from each, steps 1..{horizon} "
        f"inside the test period; the model sees only weeks before the origin"
    )
    return Protocol("holdout", start, end, horizon, windows, text)


def backtest(
    first_month: pd.Timestamp = BACKTEST_FIRST_MONTH, folds: int = BACKTEST_FOLDS, months: int = FOLD_MONTHS
) -> Protocol:
    """The course protocol: consecutive folds of `months` calendar months, each forecast whole."""
    windows = []
    for k in range(folds):
        lo = first_month + pd.DateOffset(months=months * k)
        hi = lo + pd.DateOffset(months=months)
        fridays = pd.date_range(lo, hi - pd.Timedelta(days=1), freq="W-FRI")
        windows.append(Window(origin=fridays[0], horizon=len(fridays), fold=k + 1))
    end = windows[-1].target_dates()[-1]
    text = (
        f"backtest: {folds} folds of {months} calendar months from {first_month:%Y-%m}, each forecast "
        f"from only the data before its first week; score = mean of the fold WMAEs"
    )
    horizon = max(w.horizon for w in windows)
    return Protocol("backtest", windows[0].origin, end, horizon, tuple(windows), text)


def make(name: str, horizon: int | None = None) -> Protocol:
    if name == "holdout":
        return holdout(horizon if horizon is not None else 8)
    if name == "backtest":
        protocol = backtest()
        if horizon is not None and horizon < protocol.horizon:
            raise SalesForecastError(
                f"backtest forecasts each fold whole, up to {protocol.horizon} weeks ahead: "
                f"--horizon {horizon} is too short (omit it for the backtest)"
            )
        return protocol
    raise SalesForecastError(f"unknown protocol {name!r} (expected holdout or backtest)")
