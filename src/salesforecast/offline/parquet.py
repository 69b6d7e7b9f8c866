"""Local profile: one Parquet file per table under `<workdir>/offline`, read later through DuckDB."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from salesforecast.offline.files import atomic_write


def table_path(offline_dir: Path, name: str) -> Path:
    return offline_dir / f"{name}.parquet"


def write_tables(offline_dir: Path, tables: dict[str, pd.DataFrame]) -> dict[str, Path]:
    """Write every table to a temporary file first and rename only when all were written."""
    offline_dir.mkdir(parents=True, exist_ok=True)
    staged: dict[str, Path] = {}
    try:
        for name, frame in tables.items():
            tmp = offline_dir / f".{name}.parquet.tmp"
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
            staged[name] = tmp
        for name, tmp in staged.items():
            os.replace(tmp, table_path(offline_dir, name))
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
    return {name: table_path(offline_dir, name) for name in tables}


def read_table(offline_dir: Path, name: str) -> pd.DataFrame:
    return pq.read_table(table_path(offline_dir, name)).to_pandas()


__all__ = ["atomic_write", "read_table", "table_path", "write_tables"]
