"""Shared fixtures: synthetic data, the real Kaggle files, and throw-away PostgreSQL databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from salesforecast.data import synth

REAL_DATA_DIR = Path(
    os.environ.get(
        "SALESFORECAST_TEST_DATA_DIR",
        Path(__file__).resolve().parents[1].parent / "shared" / "data" / "walmart",
    )
)
PG_ADMIN_DSN = os.environ.get("SALESFORECAST_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small deterministic synthetic data set (5 stores x 10 departments x 143 weeks)."""
    out = tmp_path_factory.mktemp("synth")
    synth.write(out, synth.generate(stores=5, depts=10, weeks=143, seed=7))
    return out


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The Kaggle files; a test that needs them fails in CI when they are missing, skips elsewhere."""
    if not (REAL_DATA_DIR / "train.csv.gz").is_file():
        if IN_CI:
            pytest.fail(f"real data not found in {REAL_DATA_DIR}")
        pytest.skip(f"real data not found in {REAL_DATA_DIR}")
    return REAL_DATA_DIR


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards.

    With CI=true a missing server fails the test instead of skipping it.
    """
    if not _pg_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is not answering at {PG_ADMIN_DSN}")
        pytest.skip(f"PostgreSQL is not answering at {PG_ADMIN_DSN}")
    name = f"sf_test_{uuid.uuid4().hex[:12]}"
    dsn = psycopg.conninfo.make_conninfo(PG_ADMIN_DSN, dbname=name)
    yield dsn
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def synth_frame(synth_dir: Path):
    """The training frame (sales features joined with store features) of the synthetic data set."""
    from salesforecast.data.ingest import load
    from salesforecast.features.build import build
    from salesforecast.model.windows import join_feature_tables

    tables = build(load(synth_dir))
    return join_feature_tables(tables.sales, tables.store)


def train_tiny_model(workdir: Path, frame_path: Path, horizon: int) -> dict:
    """A few-second TFT on a saved training frame: what serving and evaluation tests score with."""
    from salesforecast.training.train import TrainConfig, run

    return run(
        TrainConfig(
            workdir=str(workdir),
            frame_path=str(frame_path),
            cutoff="2012-02-03",
            val_weeks=8,
            epochs=1,
            windows_per_epoch=64,
            max_val_windows=32,
            batch_size=32,
            encoder_length=12,
            horizon=horizon,
            hidden_size=16,
            n_heads=2,
            amp=False,
            seed=1,
            covariates="all",  # the serving tests check every input kind, store covariates included
        )
    )
