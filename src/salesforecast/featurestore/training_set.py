"""The point-in-time correct training frame of the `demand_forecasting` service.

One row per (series, week) of `sales_features` in the requested range, from Feast's
`get_historical_features`. The entity rows carry the label: `weekly_sales` of week t is read from
`sales_features` next to the keys, never served as a feature, and every feature of the service is
joined as of week t (lags from weeks <= t-1, store facts of week t, calendar of week t).

With a PostgreSQL offline store the entity rows are a SQL query that runs inside the database
(nothing is uploaded); with DuckDB they are a data frame read from the Parquet table. A sample
(`sample_size`: about that many rows) draws whole series at random, seeded by `settings.seed`,
never rows inside a series, so windows stay contiguous. Results are cached as Parquet under
`<workdir>/training_sets/`, keyed by everything they were built from.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from salesforecast.config import Settings
from salesforecast.errors import SalesForecastError, StoreError
from salesforecast.feature_repo.services import SERVICE_NAME
from salesforecast.featurestore.config import StoreOptions
from salesforecast.featurestore.history import offline_parquet
from salesforecast.featurestore.retrieval import to_arrow
from salesforecast.featurestore.store import FeastRepo, open_applied
from salesforecast.offline import postgres
from salesforecast.offline.files import atomic_write, write_json
from salesforecast.offline.store import manifest_path

log = logging.getLogger(__name__)

KEYS = ["store", "dept", "date"]
LABELS = ["weekly_sales", "is_observed"]
ARROW_TYPES = {"Int32": pa.int32(), "Int64": pa.int64(), "Float64": pa.float64(), "Bool": pa.bool_()}
ENTITY_COLUMNS = "store_dept, store, dept, date, date AS event_timestamp, weekly_sales, is_observed"


def _utc(value: date | datetime | str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise SalesForecastError(f"--{name} {value!r} is not a date (expected YYYY-MM-DD)") from exc
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _where(start: datetime | None, end: datetime | None, observed_only: bool) -> str:
    """A filter of literal values only (our own ISO timestamps), valid in PostgreSQL and DuckDB."""
    clauses = ["TRUE"]
    if start is not None:
        clauses.append(f"date >= TIMESTAMPTZ '{start.isoformat()}'")
    if end is not None:
        clauses.append(f"date <= TIMESTAMPTZ '{end.isoformat()}'")
    if observed_only:
        clauses.append("is_observed")
    return " AND ".join(clauses)


def _series_in_range(handle: FeastRepo, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Every series with rows in range, and its number of rows."""
    query = (
        f"SELECT store_dept, count(*) FROM {{table}} WHERE {where} GROUP BY store_dept ORDER BY store_dept"
    )
    if handle.offline.is_postgres:
        with postgres.connect(handle.settings.pg_dsn) as conn:
            rows = conn.execute(query.format(table="sales_features")).fetchall()
    else:
        with _duckdb() as con:
            rows = con.execute(query.format(table=_parquet(handle))).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.int64)


def _duckdb() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _parquet(handle: FeastRepo) -> str:
    path = str(offline_parquet(handle.settings, "sales_features")).replace("'", "''")
    return f"read_parquet('{path}')"


def sample_series(
    series: np.ndarray, rows: np.ndarray, sample_size: int | None, seed: int
) -> np.ndarray | None:
    """Whole series in a seeded random order until about `sample_size` rows (None: all series).

    At least one series is kept; a series is never cut, so its weeks stay contiguous.
    """
    if sample_size is not None and sample_size < 1:
        raise SalesForecastError(f"--sample-size must be at least 1 row, got {sample_size}")
    if sample_size is None or sample_size >= rows.sum():
        return None
    order = np.random.default_rng(seed).permutation(len(series))
    keep = np.cumsum(rows[order]) <= sample_size
    keep[0] = True
    return np.sort(series[order][keep])


def entity_rows(handle: FeastRepo, where: str, series: np.ndarray | None) -> pd.DataFrame | str:
    """The (series, week) rows to join features to, with the label; SQL for PostgreSQL."""
    if series is not None:
        where += f" AND store_dept IN ({', '.join(str(int(s)) for s in series)})"
    if handle.offline.is_postgres:
        return f"SELECT {ENTITY_COLUMNS} FROM sales_features WHERE {where}"
    with _duckdb() as con:
        frame = con.execute(f"SELECT {ENTITY_COLUMNS} FROM {_parquet(handle)} WHERE {where}").df()
    for column in ("date", "event_timestamp"):
        frame[column] = frame[column].dt.tz_convert("UTC")
    return frame


def _data_stamp(handle: FeastRepo) -> dict[str, Any] | None:
    """Identifies the offline data a frame was built from; None when it cannot be told."""
    if handle.offline.is_postgres:
        manifest = manifest_path(handle.settings)
        if not manifest.is_file():
            return None
        return {"manifest": manifest.read_text(), "mtime_ns": manifest.stat().st_mtime_ns}
    stamp = {}
    for name in ("sales_features", "store_features"):
        stat = offline_parquet(handle.settings, name).stat()
        stamp[name] = [stat.st_size, stat.st_mtime_ns]
    return stamp


def _normalize(table: pa.Table, handle: FeastRepo) -> pd.DataFrame:
    """Keys, labels, then the service's features with their declared types, sorted by series and week.

    Done in Arrow (multi-threaded, no pandas copies); the offline stores differ in integer widths
    (int8 from Parquet, int16 from PostgreSQL), so declared types are applied where no value is null.
    """
    service = handle.store.get_feature_service(SERVICE_NAME)
    features = [f for p in service.feature_view_projections for f in p.features]
    table = table.select(KEYS + LABELS + [f.name for f in features])
    declared = {"store": pa.int32(), "dept": pa.int32(), "is_observed": pa.bool_()}
    declared |= {f.name: ARROW_TYPES[str(f.dtype)] for f in features if str(f.dtype) in ARROW_TYPES}
    columns = []
    for name in table.column_names:
        column = table[name]
        if name == "date":
            column = column.cast(pa.timestamp("us", tz="UTC"))
        elif name in declared and column.null_count == 0:
            column = column.cast(declared[name])
        columns.append(column)
    table = pa.table(columns, names=table.column_names)
    return table.sort_by([(key, "ascending") for key in KEYS]).to_pandas()


def build_training_set(
    settings: Settings,
    *,
    sample_size: int | None = None,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    observed_only: bool = False,
    options: StoreOptions | None = None,
    use_cache: bool = True,
) -> pd.DataFrame:
    """Columns store, dept, date, weekly_sales, is_observed and every feature of the service.

    One row per (series, week) of `sales_features` with `start <= date <= end` (UTC dates), all
    grid weeks unless `observed_only`; with `sample_size`, whole series drawn at random (seeded by
    `settings.seed`) up to about that many rows. Sorted by store, dept, date. With `use_cache`
    (the default) a frame built before from the same inputs is read back, and a new one is kept.
    """
    start_utc, end_utc = _utc(start, "start"), _utc(end, "end")
    if start_utc and end_utc and start_utc > end_utc:
        raise SalesForecastError(f"--start {start_utc.date()} is after --end {end_utc.date()}")
    handle = open_applied(settings, options)
    where = _where(start_utc, end_utc, observed_only)
    all_series, rows = _series_in_range(handle, where)
    if len(all_series) == 0:
        span = " and ".join(
            part
            for part in (
                f"on or after {start_utc.date()}" if start_utc else "",
                f"up to {end_utc.date()}" if end_utc else "",
                "observed" if observed_only else "",
            )
            if part
        )
        raise SalesForecastError(
            f"the offline store's sales_features has no weeks {span or 'at all'}: no training set to build "
            "(check --cutoff/--start/--end against the data's dates)"
        )
    series = sample_series(all_series, rows, sample_size, settings.seed)

    inputs = {
        "profile": settings.profile.value,
        "offline_store": handle.offline.value,
        "definitions": handle.fingerprint,
        "sample_size": sample_size,
        "seed": settings.seed if series is not None else None,
        "start": start_utc.isoformat() if start_utc else None,
        "end": end_utc.isoformat() if end_utc else None,
        "observed_only": observed_only,
        "data": _data_stamp(handle),
    }
    cache = _cache_path(settings, inputs)
    if use_cache and inputs["data"] is not None and cache.is_file():
        log.info("training set from cache %s", cache)
        return pq.read_table(cache).to_pandas()

    entities = entity_rows(handle, where, series)
    try:
        job = handle.store.get_historical_features(
            entity_df=entities, features=handle.store.get_feature_service(SERVICE_NAME)
        )
        table = to_arrow(job)
    except SalesForecastError:
        raise
    except Exception as exc:
        raise StoreError(
            f"historical retrieval from the {handle.offline.value} offline store failed: {exc}"
        ) from exc
    expected = len(entities) if isinstance(entities, pd.DataFrame) else None
    if expected is not None and table.num_rows != expected:
        raise StoreError(f"historical retrieval returned {table.num_rows} rows for {expected} entity rows")
    frame = _normalize(table, handle)
    if use_cache and inputs["data"] is not None:
        write_parquet(frame, cache)
        write_json(cache.with_suffix(".json"), {**inputs, "rows": len(frame), "built": datetime.now(UTC)})
    return frame


def _cache_path(settings: Settings, inputs: dict[str, Any]) -> Path:
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return settings.workdir / "training_sets" / f"{key}.parquet"


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    return atomic_write(
        path, lambda tmp: pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
    )
