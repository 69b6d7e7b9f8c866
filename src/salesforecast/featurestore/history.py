"""The Parquet sources for DuckDB: the offline tables plus the serving-only arrays.

`sales_history.parquet` is `sales_features.parquet` plus `recent_sales`; `store_history.parquet` is
`store_features.parquet` plus the `<column>_recent` arrays of the past store covariates.

A Feast `FileSource` cannot be a query, so the column that PostgreSQL computes on read
(`feature_repo.sources.POSTGRES_SALES_QUERY`) is written once here with its DuckDB twin,
`DUCKDB_SALES_QUERY`. The file is rebuilt whenever `sales_features.parquet` changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from salesforecast.config import Profile, Settings
from salesforecast.errors import SalesForecastError
from salesforecast.feature_repo.sources import DUCKDB_SALES_QUERY, DUCKDB_STORE_QUERY
from salesforecast.featurestore.config import derived_dir
from salesforecast.offline.files import atomic_write, write_json
from salesforecast.offline.parquet import table_path


def offline_parquet(settings: Settings, name: str) -> Path:
    """A table of the local offline store; the DuckDB offline store reads it in either profile."""
    path = table_path(settings.offline_dir, name)
    if not path.is_file():
        hint = "" if settings.profile is Profile.local else " --profile local"
        raise SalesForecastError(
            f"{path} not found: the DuckDB offline store reads the Parquet tables; build them with "
            f"`salesforecast features build --data-dir DIR{hint} --workdir {settings.workdir}`"
        )
    return path


def _stamp(path: Path) -> dict[str, int | str]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def sales_history_parquet(settings: Settings) -> Path:
    """Path of the derived file, (re)built when its input changed since the last build."""
    return _derived(settings, "sales_features", "sales_history.parquet", DUCKDB_SALES_QUERY)


def store_history_parquet(settings: Settings) -> Path:
    """Path of the derived store file, (re)built when its input changed since the last build."""
    return _derived(settings, "store_features", "store_history.parquet", DUCKDB_STORE_QUERY)


def _derived(settings: Settings, table: str, name: str, sql: str) -> Path:
    source = offline_parquet(settings, table)
    out = derived_dir(settings) / name
    stamp_file = out.with_suffix(".json")
    stamp = _stamp(source) | {"query": sql}
    if out.is_file() and stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        return out

    def write(tmp: Path) -> None:
        query = sql.format(path=str(source.resolve()).replace("'", "''"))
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(f"COPY ({query}) TO '{str(tmp).replace(chr(39), chr(39) * 2)}' (FORMAT parquet)")

    atomic_write(out, write)
    write_json(stamp_file, stamp)
    return out
