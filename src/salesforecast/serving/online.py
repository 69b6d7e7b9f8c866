"""The one online read, and the calendar inputs of any week.

One `get_online_features` call per request returns, per series, the sales of the last
`RECENT_WEEKS` weeks up to its latest materialized week, and per store the scalar facts (type, size)
and the past covariates of the last `STORE_RECENT_WEEKS` weeks. `serving.inputs` lays the model's
inputs out from that alone, with the offline build's own feature functions. Nothing reads the
offline store at request time.

The response is read from Feast's `GetOnlineFeaturesResponse` proto (its documented wire format)
rather than `to_dict`: a store's arrays repeat on every row of its series, and converting them
once per store instead of once per row is most of the read's Python time for a batch.

The forecast origin of a series is the week after its store's latest materialized week T (the
`feature_timestamp`); the known inputs of weeks T+1.. are calendar facts, computed by rule.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from salesforecast.config import Settings
from salesforecast.errors import OnlineStoreUnavailable, UnknownSeriesError
from salesforecast.feature_repo.on_demand import seasonality_features
from salesforecast.feature_repo.sources import RECENT_WEEKS, STORE_RECENT_COLUMNS, STORE_RECENT_FEATURES
from salesforecast.features.calendar import calendar_features
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
    # per distinct store: [len(STORE_RECENT_COLUMNS), m] float64, its last m weeks ending at store_date
    store_recent: dict[int, np.ndarray]


def _ts(values: list) -> np.ndarray:
    return np.array(values, dtype="int64").astype("datetime64[s]")


def _scalar(value: Any) -> Any:
    """A proto `Value`'s scalar, None when null."""
    kind = value.WhichOneof("val")
    return None if kind is None or kind == "null_val" else getattr(value, kind)


def _doubles(value: Any) -> np.ndarray | None:
    """A proto `Value`'s double list as float64, None when null."""
    kind = value.WhichOneof("val")
    return (
        None if kind is None or kind == "null_val" else np.array(value.double_list_val.val, dtype="float64")
    )


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

    def _call(self, keys: list[tuple[int, int]]) -> dict[str, Any]:
        """feature name -> its `FeatureVector` (values, statuses, event_timestamps), one per key."""
        rows = [{"store_dept": s * 1000 + d, "store": s} for s, d in keys]
        with self._lock:
            try:
                response = self.store.get_online_features(features=list(ONLINE_REFS), entity_rows=rows)
            except Exception as exc:
                self._reset_client()
                lost = any(m in str(exc).lower() for m in ("no such table", "does not exist"))
                hint = "; its tables are gone: run `salesforecast materialize --full`" if lost else ""
                raise OnlineStoreUnavailable(
                    f"the {self.kind} online store did not answer ({type(exc).__name__}: {exc}){hint}"
                ) from exc
        proto = response.proto
        return dict(zip(proto.metadata.feature_names.val, proto.results, strict=True))

    def check(self) -> None:
        """Raise OnlineStoreUnavailable unless the online store answers a read."""
        self._call([(1, 1)])

    def read(self, keys: list[tuple[int, int]]) -> OnlineRows:
        data = self._call(keys)
        sales = [_doubles(v) for v in data["recent_sales"].values]
        scalars = {c: [_scalar(v) for v in data[c].values] for c in STORE_SCALARS}
        unknown = [
            k
            for k, x, size in zip(keys, sales, scalars["store_size"], strict=True)
            if x is None or size is None
        ]
        if unknown:
            raise UnknownSeriesError(unknown)
        recent = np.full((len(keys), RECENT_WEEKS), np.nan)
        for i, values in enumerate(sales):
            values = values[-RECENT_WEEKS:]
            recent[i, RECENT_WEEKS - len(values) :] = values
        store_recent: dict[int, np.ndarray] = {}
        arrays = [data[f"{c}_recent"].values for c in STORE_RECENT_COLUMNS]
        for i, (store, _) in enumerate(keys):
            if store not in store_recent:  # the same online row on every series of the store
                columns = [_doubles(column[i]) for column in arrays]
                store_recent[store] = np.array([[] if c is None else c for c in columns], dtype="float64")
        return OnlineRows(
            keys=keys,
            sales_date=_ts([t.seconds for t in data["recent_sales"].event_timestamps]),
            recent_sales=recent,
            store_date=_ts([t.seconds for t in data["store_size"].event_timestamps]),
            store_scalars={c: np.asarray(v) for c, v in scalars.items()},
            store_recent=store_recent,
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
