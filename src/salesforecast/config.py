"""One typed settings object shared by every stage, so one run's stages agree on paths and stores."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Profile(StrEnum):
    local = "local"  # embedded: Parquet (read through DuckDB) and SQLite, no server
    postgres = "postgres"  # PostgreSQL for registry, offline and online store


DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/salesforecast"


class Settings(BaseSettings):
    """Values come from arguments, then `SALESFORECAST_*` environment variables, then defaults.

    Secrets (the DSN's password) are only ever read from the environment.
    """

    model_config = SettingsConfigDict(env_prefix="SALESFORECAST_", extra="ignore")

    workdir: Path = Path("salesforecast-work")
    data_dir: Path | None = None
    profile: Profile = Profile.local
    pg_dsn: str = DEFAULT_PG_DSN
    encoder_length: int = Field(52, ge=4, le=104)
    horizon: int = Field(8, ge=1, le=39)
    seed: int = 42
    # MLflow tracking: "" = SQLite store <workdir>/mlflow.db, "off" = none, else a tracking URI.
    mlflow_uri: str = ""
    # How evaluation runs the TFT: "auto" = the autocast dtype it was trained with, "fp32" = exact.
    tft_precision: Literal["auto", "fp32"] = "auto"

    @property
    def offline_dir(self) -> Path:
        return self.workdir / "offline"

    @property
    def reports_dir(self) -> Path:
        return self.workdir / "reports"

    @property
    def artifacts_dir(self) -> Path:
        return self.workdir / "artifacts"
