"""Batch scoring: every series of the offline store through the one prediction path, in batches."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pandas as pd

from salesforecast.config import Profile, Settings
from salesforecast.errors import SalesForecastError
from salesforecast.offline import postgres
from salesforecast.offline.files import atomic_write
from salesforecast.offline.parquet import table_path
from salesforecast.serving.predict import Forecaster

BATCH_SIZE = 500  # series per online read; the API's maximum request


def series_keys(settings: Settings) -> list[tuple[int, int]]:
    """Every (store, dept) of `sales_features`, sorted: which series exist is an offline fact."""
    if settings.profile is Profile.postgres:
        with postgres.connect(settings.pg_dsn) as conn:
            rows = conn.execute("SELECT DISTINCT store, dept FROM sales_features ORDER BY 1, 2").fetchall()
    else:
        path = table_path(settings.offline_dir, "sales_features")
        if not path.is_file():
            raise SalesForecastError(
                f"{path} not found: build the offline tables with `salesforecast features build`"
            )
        with duckdb.connect() as con:
            rows = con.execute(
                "SELECT DISTINCT store, dept FROM read_parquet(?) ORDER BY 1, 2", [str(path)]
            ).fetchall()
    return [(int(s), int(d)) for s, d in rows]


def score_all(
    forecaster: Forecaster,
    keys: list[tuple[int, int]],
    horizon: int | None = None,
    batch_size: int = BATCH_SIZE,
) -> pd.DataFrame:
    """Forecasts of `keys` in batches of `batch_size` (one online read and one model call each)."""
    parts = [
        forecaster.forecast_frame(keys[lo : lo + batch_size], horizon)
        for lo in range(0, len(keys), batch_size)
    ]
    return pd.concat(parts, ignore_index=True)


def write_forecasts(frame: pd.DataFrame, out: Path) -> Path:
    """Parquet or CSV by the file's suffix, written atomically."""
    suffix = out.suffix.lower()
    if suffix not in {".parquet", ".csv"}:
        raise SalesForecastError(f"--out {out}: expected a .parquet or .csv file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        return atomic_write(out, lambda tmp: frame.to_parquet(tmp, index=False))
    return atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False, date_format="%Y-%m-%d"))


def forecast_all(
    settings: Settings, forecaster: Forecaster, horizon: int | None = None
) -> tuple[pd.DataFrame, float]:
    started = time.perf_counter()
    frame = score_all(forecaster, series_keys(settings), horizon)
    return frame, time.perf_counter() - started
