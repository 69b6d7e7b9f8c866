"""The one online read, and the model's input frame rebuilt from it.

One `get_online_features` call per request returns, per series, the sales of the last
`RECENT_WEEKS` weeks up to its latest materialized week, and per store the scalar facts (type, size)
and the past covariates of the last `STORE_RECENT_WEEKS` weeks. From that alone `rebuild_frame`
makes the rows of the training frame (same columns) for the weeks the model reads: sales lags and
rolling statistics with the offline build's own transforms (`features.transforms`), calendar inputs
with `features.calendar` and the `seasonality` view's function, `holiday_markdown` with the
`promotion` view's function. `build_panel` and `gather` of `model.windows` then cut the windows
exactly as in training. Nothing reads the offline store at request time.

The forecast origin of a series is the week after its store's latest materialized week T (the
`feature_timestamp`); the known inputs of weeks T+1.. are calendar facts, computed by rule.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd

from salesforecast.config import Settings
from salesforecast.errors import OnlineStoreUnavailable, SalesForecastError, UnknownSeriesError
from salesforecast.feature_repo.on_demand import promotion_features, seasonality_features
from salesforecast.feature_repo.sources import (
    RECENT_WEEKS,
    SEASON_WEEKS,
    STORE_RECENT_COLUMNS,
    STORE_RECENT_FEATURES,
)
from salesforecast.features.calendar import calendar_features
from salesforecast.features.transforms import SALES_TRANSFORMS
from salesforecast.featurestore.config import StoreOptions

WEEK = np.timedelta64(7, "D")
STORE_SCALARS = ("store_type", "store_size")
ONLINE_REFS = (
    "sales_history:recent_sales",
    *(f"store_external:{name}" for name in (*STORE_SCALARS, *STORE_RECENT_FEATURES)),
)


@dataclass
class OnlineRows:
    """What one online read returned, one entry per requested (distinct) series."""

    keys: list[tuple[int, int]]
    sales_date: np.ndarray  # [n] datetime64[s]: the series' latest materialized week
    recent_sales: np.ndarray  # [n, RECENT_WEEKS] float64, oldest first, ends at sales_date
    store_date: np.ndarray  # [n] datetime64[s]: the store's latest materialized week (T)
    store_scalars: dict[str, np.ndarray]  # store_type, store_size: [n]
    store_recent: dict[str, list[list[float]]]  # column -> per series, weeks ending at store_date


def _ts(values: list) -> np.ndarray:
    return np.array(values, dtype="int64").astype("datetime64[s]")


class OnlineReader:
    """The Feast store opened once per process; `read` is the request's one online call."""

    def __init__(self, settings: Settings, options: StoreOptions | None = None) -> None:
        from salesforecast.featurestore.store import open_applied

        handle = open_applied(settings, options)
        self.store = handle.store
        self.kind = handle.options.online_for(settings).value
        self._lock = threading.Lock()  # Feast's cached SQLite/PostgreSQL connections are not thread-safe

    def _reset_client(self) -> None:
        """Drop the online store's cached connection so the next read reconnects (after an outage)."""
        online = self.store._get_provider().online_store  # type: ignore[attr-defined]
        for attr in ("_conn", "_conn_pool", "_client"):
            if getattr(online, attr, None) is not None:
                with contextlib.suppress(Exception):  # already broken: closing is best effort
                    getattr(online, attr).close()
                setattr(online, attr, None)

    def _call(self, keys: list[tuple[int, int]]) -> dict[str, list]:
        rows = [{"store_dept": s * 1000 + d, "store": s} for s, d in keys]
        with self._lock:
            try:
                response = self.store.get_online_features(features=list(ONLINE_REFS), entity_rows=rows)
                return response.to_dict(include_event_timestamps=True)
            except Exception as exc:
                self._reset_client()
                raise OnlineStoreUnavailable(
                    f"the {self.kind} online store did not answer ({type(exc).__name__}: {exc})"
                ) from exc

    def check(self) -> None:
        """Raise OnlineStoreUnavailable unless the online store answers a read."""
        self._call([(1, 1)])

    def read(self, keys: list[tuple[int, int]]) -> OnlineRows:
        data = self._call(keys)
        unknown = [
            k
            for k, sales, size in zip(keys, data["recent_sales"], data["store_size"], strict=True)
            if sales is None or size is None
        ]
        if unknown:
            raise UnknownSeriesError(unknown)
        recent = np.full((len(keys), RECENT_WEEKS), np.nan)
        for i, values in enumerate(data["recent_sales"]):
            values = np.asarray(values, dtype="float64")[-RECENT_WEEKS:]
            recent[i, RECENT_WEEKS - len(values) :] = values
        return OnlineRows(
            keys=keys,
            sales_date=_ts(data["recent_sales__ts"]),
            recent_sales=recent,
            store_date=_ts(data["store_size__ts"]),
            store_scalars={c: np.asarray(data[c]) for c in STORE_SCALARS},
            store_recent={c: data[f"{c}_recent"] for c in STORE_RECENT_COLUMNS},
        )


def _utc(days: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(days.astype("datetime64[ns]")).tz_localize("UTC")


_CALENDAR_CACHE: dict[bytes, pd.DataFrame] = {}


def calendar_frame(dates: np.ndarray) -> pd.DataFrame:
    """Known-in-advance inputs of any week, by rule (the offline tables use the same functions).

    Cached by the dates: every request of one materialization asks for the same weeks.
    """
    key = np.ascontiguousarray(dates.astype("datetime64[s]")).tobytes()
    if key not in _CALENDAR_CACHE:
        if len(_CALENDAR_CACHE) > 64:
            _CALENDAR_CACHE.clear()
        _CALENDAR_CACHE[key] = _calendar_frame(dates)
    return _CALENDAR_CACHE[key]


def _calendar_frame(dates: np.ndarray) -> pd.DataFrame:
    index = _utc(dates)
    cal = calendar_features(index.tz_localize(None))
    season = seasonality_features({"date": list(index.to_pydatetime())})
    out = pd.DataFrame({"date": index})
    out["is_holiday"] = cal["holiday_type"].to_numpy() > 0
    for name in ("holiday_type", "weeks_to_next_holiday"):
        out[name] = cal[name].to_numpy()
    for name, values in season.items():
        out[name] = values
    return out


def rebuild_frame(
    rows: OnlineRows, encoder_length: int, horizon: int
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """The training frame's rows for each series' window, its store weeks, and each series' origin.

    Returns (frame, store_frame, origin): `frame` has one row per series and week of its encoder and
    the 52 weeks before it (up to its latest week), `store_frame` one row per store and week from the
    encoder's first week to the horizon's last, `origin` [n] the first forecast week.
    """
    if encoder_length + SEASON_WEEKS > RECENT_WEEKS:
        raise SalesForecastError(
            f"the model's encoder ({encoder_length} weeks) needs {encoder_length + SEASON_WEEKS} weeks of "
            f"sales history; the online store serves {RECENT_WEEKS}"
        )
    n = len(rows.keys)
    T = rows.store_date
    origin = T + WEEK
    # Each series' sales on a grid of RECENT_WEEKS weeks ending at its store's T.
    lag_weeks = ((T - rows.sales_date) // WEEK).astype("int64")
    if (lag_weeks < 0).any():
        raise SalesForecastError("online store: a series is materialized beyond its store's latest week")
    grid = np.full((n, RECENT_WEEKS), np.nan)
    cols = np.arange(RECENT_WEEKS)
    for i, d in enumerate(lag_weeks):
        if d < RECENT_WEEKS:
            grid[i, : RECENT_WEEKS - d] = rows.recent_sales[i, d:]
    features = {name: transform(grid) for name, transform in SALES_TRANSFORMS.items()}

    window = encoder_length + SEASON_WEEKS
    first = RECENT_WEEKS - window
    keep = np.zeros((n, RECENT_WEEKS), dtype=bool)
    keep[:, first:] = cols[None, first:] <= (RECENT_WEEKS - 1 - lag_weeks)[:, None]  # no row after its week
    # A series whose last week is older than the window keeps one empty row (as if unobserved), so
    # that it still has a panel row: its whole window is then unobserved, as in the offline panel.
    empty = ~keep.any(axis=1)
    keep[empty, first] = True
    r, c = np.nonzero(keep)
    dates = T[r] - (RECENT_WEEKS - 1 - c) * WEEK
    stores = np.array([k[0] for k in rows.keys], dtype="int64")
    depts = np.array([k[1] for k in rows.keys], dtype="int64")
    sales = grid[r, c]
    blank = empty[r]
    features = {name: np.where(blank, np.nan, values[r, c]) for name, values in features.items()}
    frame = pd.DataFrame(
        {
            "store_dept": stores[r] * 1000 + depts[r],
            "store": stores[r].astype("int32"),
            "dept": depts[r].astype("int32"),
            "date": _utc(dates),
            "weekly_sales": sales,
            "is_observed": np.isfinite(sales),
            **features,
        }
    )

    # Store weeks: the served covariates up to T, then the horizon's calendar facts.
    parts = []
    seen: set[int] = set()
    for i in range(n):
        store = int(stores[i])
        if store in seen:
            continue
        seen.add(store)
        m = len(rows.store_recent[STORE_RECENT_COLUMNS[0]][i])
        past = T[i] - np.arange(m - 1, -1, -1) * WEEK
        future = T[i] + np.arange(1, horizon + 1) * WEEK
        part = {
            "store": np.full(m + horizon, store, dtype="int32"),
            "date": np.concatenate([past, future]),
            **{sc: np.full(m + horizon, rows.store_scalars[sc][i]) for sc in STORE_SCALARS},
        }
        for col in STORE_RECENT_COLUMNS:
            values = np.asarray(rows.store_recent[col][i], dtype="float64")
            part[col] = np.concatenate([values, np.full(horizon, np.nan)])
        parts.append(pd.DataFrame(part))
    store_frame = pd.concat(parts, ignore_index=True)
    lo = T.min() - (window - 1) * WEEK
    store_frame = store_frame[store_frame["date"].to_numpy() >= lo].reset_index(drop=True)
    days = store_frame["date"].to_numpy()
    unique, inverse = np.unique(days, return_inverse=True)
    cal = calendar_frame(unique).iloc[inverse].reset_index(drop=True)
    store_frame = pd.concat([store_frame.drop(columns="date"), cal], axis=1)
    store_frame["has_markdown"] = store_frame["has_markdown"] > 0.5
    promo = promotion_features(
        {
            col: store_frame[col].astype(object).where(store_frame[col].notna(), None).tolist()
            for col in ("total_markdown", "is_holiday", "store_size", *(f"markdown{j}" for j in range(1, 6)))
        }
    )
    store_frame["holiday_markdown"] = np.array(
        [np.nan if v is None else v for v in promo["holiday_markdown"]], dtype="float64"
    )
    frame = frame.merge(
        store_frame.drop(columns=list(STORE_SCALARS)),
        on=["store", "date"],
        how="left",
        validate="many_to_one",
    )
    for sc in STORE_SCALARS:  # static: every row of the series, also weeks older than the store arrays
        frame[sc] = rows.store_scalars[sc][r]
    return frame, store_frame, origin
