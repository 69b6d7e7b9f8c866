"""Batch sources: PostgreSQL in the postgres profile, Parquet in the local profile.

Both kinds expose the same columns, so the views in `views.py` are shared. The `sales_features`
source adds one column to the offline table, `recent_sales`: the weekly sales of weeks t-51..t
(oldest first, NaN where a week was not observed or lies before the series' first week). It is
what serving needs to rebuild a 52-week encoder window from one online read. Because it holds
week t's own sales, it is never part of the feature service used for training (see `services.py`).

- PostgreSQL computes it in the source query with a correlated sub-select. PostgreSQL evaluates it
  only for the rows a query returns and drops it when a query does not select it, so training
  retrieval pays nothing and materialization computes it for the latest row of each series only.
- DuckDB reads Parquet files only (a `FileSource` cannot be a query), so the local profile reads a
  derived copy of `sales_features.parquet` with the column added, written by
  `salesforecast.featurestore.history` with `DUCKDB_SALES_QUERY`.

The two SQL texts below are the only definitions of `recent_sales`; a test checks they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from feast import FileSource
from feast.data_format import ParquetFormat
from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

RECENT_WEEKS = 52
TIMESTAMP_FIELD = "date"

POSTGRES_SALES_QUERY = f"""
SELECT s.*,
    (SELECT array_fill('NaN'::float8, ARRAY[{RECENT_WEEKS} - count(*)::int])
            || array_agg(COALESCE(h.weekly_sales, 'NaN'::float8) ORDER BY h.date)
     FROM sales_features AS h
     WHERE h.store_dept = s.store_dept
       AND h.date > s.date - interval '{RECENT_WEEKS} weeks'
       AND h.date <= s.date) AS recent_sales
FROM sales_features AS s
""".strip()

# `{path}` is the Parquet file of sales_features; sales_features is a complete weekly grid per series.
DUCKDB_SALES_QUERY = f"""
SELECT * EXCLUDE (w),
    list_concat(list_resize([]::DOUBLE[], {RECENT_WEEKS} - len(w), 'NaN'::DOUBLE), w) AS recent_sales
FROM (
    SELECT *,
        list(COALESCE(weekly_sales, 'NaN'::DOUBLE)) OVER (
            PARTITION BY store_dept ORDER BY date
            RANGE BETWEEN INTERVAL {RECENT_WEEKS - 1} WEEKS PRECEDING AND CURRENT ROW
        ) AS w
    FROM read_parquet('{{path}}')
)
ORDER BY store_dept, date
""".strip()


@dataclass(frozen=True)
class Sources:
    sales: DataSource
    store: DataSource


def postgres_sources() -> Sources:
    """Tables `sales_features` and `store_features` in the database of the offline store."""
    return Sources(
        sales=PostgreSQLSource(
            name="sales_features",
            query=POSTGRES_SALES_QUERY,
            timestamp_field=TIMESTAMP_FIELD,
            description="sales_features with recent_sales (weeks t-51..t) computed on read.",
        ),
        store=PostgreSQLSource(
            name="store_features",
            table="store_features",
            timestamp_field=TIMESTAMP_FIELD,
            description="One row per store and week of features.csv.",
        ),
    )


def parquet_sources(sales_path: Path, store_path: Path) -> Sources:
    """Parquet files read by the DuckDB offline store (absolute paths)."""
    return Sources(
        sales=FileSource(
            name="sales_features",
            path=str(Path(sales_path).resolve()),
            file_format=ParquetFormat(),
            timestamp_field=TIMESTAMP_FIELD,
            description="sales_features.parquet with recent_sales (weeks t-51..t) added.",
        ),
        store=FileSource(
            name="store_features",
            path=str(Path(store_path).resolve()),
            file_format=ParquetFormat(),
            timestamp_field=TIMESTAMP_FIELD,
            description="One row per store and week of features.csv.",
        ),
    )
