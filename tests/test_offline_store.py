"""The offline store: Parquet and PostgreSQL tables, atomic replacement, idempotent re-runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from salesforecast.cli import app
from salesforecast.config import Profile, Settings
from salesforecast.data.ingest import load
from salesforecast.features.build import build
from salesforecast.offline import postgres
from salesforecast.offline.store import read_feature_table, write_feature_tables

runner = CliRunner()


def _count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]


def _indexes(dsn: str, table: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,)).fetchall()
    return {r[0] for r in rows}


def test_local_profile_round_trip_and_rerun(synth_dir: Path, tmp_path: Path) -> None:
    settings = Settings(workdir=tmp_path, profile=Profile.local)
    raw = load(synth_dir)
    tables = build(raw)
    manifest = write_feature_tables(settings, tables, raw.sources)
    assert manifest["rows"]["sales_features"] == len(tables.sales)
    again = read_feature_table(settings, "sales_features")
    pd.testing.assert_frame_equal(again, tables.sales)
    write_feature_tables(settings, tables, raw.sources)
    assert len(read_feature_table(settings, "sales_features")) == len(tables.sales)
    assert sorted(p.name for p in settings.offline_dir.iterdir()) == [
        "manifest-local.json",
        "sales_features.parquet",
        "store_features.parquet",
    ]


def test_postgres_profile_tables_indexes_and_idempotent_rerun(synth_dir: Path, pg_dsn: str) -> None:
    settings = Settings(profile=Profile.postgres, pg_dsn=pg_dsn, workdir=Path("unused"))
    raw = load(synth_dir)
    tables = build(raw)
    postgres.write_tables(pg_dsn, {"sales_features": tables.sales, "store_features": tables.store})
    assert _count(pg_dsn, "sales_features") == len(tables.sales)
    assert _count(pg_dsn, "store_features") == len(tables.store)
    assert _indexes(pg_dsn, "sales_features") >= {
        "idx_sales_date",
        "idx_sales_store_dept",
        "idx_sales_store_dept_date",
    }
    postgres.write_tables(pg_dsn, {"sales_features": tables.sales, "store_features": tables.store})
    assert _count(pg_dsn, "sales_features") == len(tables.sales)
    back = read_feature_table(settings, "sales_features").sort_values(["store", "dept", "date"])
    expected = tables.sales.sort_values(["store", "dept", "date"])
    pd.testing.assert_series_equal(
        back["weekly_sales"].astype(float).reset_index(drop=True),
        expected["weekly_sales"].reset_index(drop=True),
    )
    assert back["date"].iloc[0] == expected["date"].iloc[0]


def test_postgres_database_is_created_when_missing(pg_dsn: str) -> None:
    postgres.ensure_database(pg_dsn)
    postgres.ensure_database(pg_dsn)  # idempotent
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone() is not None


def test_failed_load_leaves_previous_tables(synth_dir: Path, pg_dsn: str, monkeypatch) -> None:
    raw = load(synth_dir)
    tables = build(raw)
    frames = {"sales_features": tables.sales, "store_features": tables.store}
    postgres.write_tables(pg_dsn, frames)
    before = _count(pg_dsn, "sales_features")

    real_copy = postgres._copy
    calls = []

    def crash_on_second_table(cur, table, frame):
        calls.append(table)
        if table == "store_features__load":
            real_copy(cur, table, frame.head(10))
            raise ConnectionResetError("simulated crash in the middle of the load")
        real_copy(cur, table, frame.head(100))  # a shorter sales table was already swapped in

    monkeypatch.setattr(postgres, "_copy", crash_on_second_table)
    with pytest.raises(ConnectionResetError):
        postgres.write_tables(pg_dsn, frames)
    assert calls == ["sales_features__load", "store_features__load"]
    assert _count(pg_dsn, "sales_features") == before
    assert _count(pg_dsn, "store_features") == len(tables.store)
    with psycopg.connect(pg_dsn) as conn:
        leftovers = conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE '%%__load'").fetchall()
    assert leftovers == []


def test_bad_input_via_cli_leaves_previous_tables(synth_dir: Path, pg_dsn: str, tmp_path: Path) -> None:
    env = {"SALESFORECAST_PG_DSN": pg_dsn}
    args = ["features", "build", "--profile", "postgres", "--workdir", str(tmp_path / "w")]
    ok = runner.invoke(app, [*args, "--data-dir", str(synth_dir)], env=env)
    assert ok.exit_code == 0, ok.output
    before = _count(pg_dsn, "sales_features")

    bad = tmp_path / "bad"
    shutil.copytree(synth_dir, bad)
    text = (bad / "train.csv").read_text().split("\n")
    text[100] = text[100].rsplit(",", 2)[0] + ",oops," + text[100].rsplit(",", 1)[1]
    (bad / "train.csv").write_text("\n".join(text))
    result = runner.invoke(app, [*args, "--data-dir", str(bad)], env=env)
    assert result.exit_code == 2
    assert "line 101" in result.output and "Weekly_Sales" in result.output
    assert "Traceback" not in result.output
    assert _count(pg_dsn, "sales_features") == before


def test_unreachable_postgres_is_a_clear_error(synth_dir: Path, tmp_path: Path) -> None:
    env = {"SALESFORECAST_PG_DSN": "postgresql://postgres@127.0.0.1:1/salesforecast"}
    result = runner.invoke(
        app,
        [
            "features",
            "build",
            "--profile",
            "postgres",
            "--data-dir",
            str(synth_dir),
            "--workdir",
            str(tmp_path),
        ],
        env=env,
    )
    assert result.exit_code == 2
    assert "cannot connect to PostgreSQL at 127.0.0.1:1" in result.output
    assert "Traceback" not in result.output
