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

Serving rebuilds the model's whole input window from one online read, so the window is long enough
for the longest encoder the settings allow (`MAX_ENCODER_WEEKS`) plus the 52 weeks that
`sales_52_weeks_ago` looks back. Likewise the `store_features` source adds, per store-week, arrays of
the past-only store covariates over the last `STORE_RECENT_WEEKS` weeks (`<column>_recent`, oldest
first, as many weeks as exist). They are declared in `store_external` but kept out of the service and
out of the `promotion` view's inputs, so training retrieval never selects them (PostgreSQL then drops
the sub-selects) and serving requests them beside the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from feast import FileSource
from feast.data_format import ParquetFormat
from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

MAX_ENCODER_WEEKS = 104  # the largest `Settings.encoder_length`
SEASON_WEEKS = 52  # `sales_52_weeks_ago` of the oldest encoder week
RECENT_WEEKS = MAX_ENCODER_WEEKS + SEASON_WEEKS
STORE_RECENT_WEEKS = MAX_ENCODER_WEEKS
# Past-only store covariates served as arrays (`<column>_recent`); booleans as 0.0/1.0.
STORE_RECENT_COLUMNS = (
    "temperature",
    "fuel_price",
    "cpi",
    "unemployment",
    "markdown1",
    "markdown2",
    "markdown3",
    "markdown4",
    "markdown5",
    "total_markdown",
    "has_markdown",
)
STORE_RECENT_FEATURES = tuple(f"{c}_recent" for c in STORE_RECENT_COLUMNS)
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


def _pg_value(column: str) -> str:
    cast = "::int::float8" if column == "has_markdown" else "::float8"
    return f"COALESCE(h.{column}{cast}, 'NaN'::float8)"


POSTGRES_STORE_QUERY = (
    "SELECT s.*,\n"
    + ",\n".join(
        f"    (SELECT array_agg({_pg_value(c)} ORDER BY h.date) FROM store_features AS h\n"
        f"     WHERE h.store = s.store AND h.date > s.date - interval '{STORE_RECENT_WEEKS} weeks'\n"
        f"       AND h.date <= s.date) AS {c}_recent"
        for c in STORE_RECENT_COLUMNS
    )
    + "\nFROM store_features AS s"
)


def _duck_value(column: str) -> str:
    cast = "::INTEGER::DOUBLE" if column == "has_markdown" else "::DOUBLE"
    return f"COALESCE({column}{cast}, 'NaN'::DOUBLE)"


# `{path}` is the Parquet file of store_features.
DUCKDB_STORE_QUERY = (
    "SELECT *,\n"
    + ",\n".join(f"    list({_duck_value(c)}) OVER w AS {c}_recent" for c in STORE_RECENT_COLUMNS)
    + "\nFROM read_parquet('{path}')\n"
    + "WINDOW w AS (PARTITION BY store ORDER BY date\n"
    + f"    RANGE BETWEEN INTERVAL {STORE_RECENT_WEEKS - 1} WEEKS PRECEDING AND CURRENT ROW)\n"
    + "ORDER BY store, date"
)

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
            query=POSTGRES_STORE_QUERY,
            timestamp_field=TIMESTAMP_FIELD,
            description="store_features with the recent past covariates (arrays) computed on read.",
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
            description="store_features.parquet with the recent past covariates (arrays) added.",
        ),
    )
