"""Profile dispatch: the same feature tables go to Parquet (local) or PostgreSQL (postgres)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from salesforecast.config import Profile, Settings
from salesforecast.features.build import FeatureTables
from salesforecast.offline import parquet, postgres
from salesforecast.offline.files import write_json

TABLES = ("sales_features", "store_features")


def write_feature_tables(
    settings: Settings, tables: FeatureTables, sources: dict[str, str]
) -> dict[str, object]:
    """Write both tables for the settings' profile and record what was built from what."""
    frames = {"sales_features": tables.sales, "store_features": tables.store}
    started = time.perf_counter()
    if settings.profile is Profile.postgres:
        postgres.write_tables(settings.pg_dsn, frames)
        location = "postgresql tables " + ", ".join(frames)
    else:
        paths = parquet.write_tables(settings.offline_dir, frames)
        location = ", ".join(str(p) for p in paths.values())
    manifest = {
        "profile": settings.profile.value,
        "location": location,
        "sources": sources,
        "rows": {name: len(frame) for name, frame in frames.items()},
        "observed_sales_rows": int(tables.sales["is_observed"].sum()),
        "write_seconds": round(time.perf_counter() - started, 3),
    }
    write_json(manifest_path(settings), manifest)
    return manifest


def manifest_path(settings: Settings) -> Path:
    return settings.offline_dir / f"manifest-{settings.profile.value}.json"


def read_feature_table(settings: Settings, name: str) -> pd.DataFrame:
    if settings.profile is Profile.postgres:
        return postgres.read_table(settings.pg_dsn, name)
    return parquet.read_table(settings.offline_dir, name)
