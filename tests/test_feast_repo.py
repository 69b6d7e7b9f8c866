"""The Feast repository: registry contents, the generated configuration, and leak guards."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from feast import FeatureStore
from feast.repo_config import load_repo_config

from salesforecast.config import Settings
from salesforecast.data.ingest import load
from salesforecast.errors import SalesForecastError
from salesforecast.feature_repo import on_demand
from salesforecast.feature_repo.on_demand import PROMOTION_SCHEMA, SEASONALITY_SCHEMA
from salesforecast.feature_repo.sources import STORE_RECENT_FEATURES
from salesforecast.feature_repo.views import STORE_FEATURES
from salesforecast.features.build import SALES_FEATURES, build
from salesforecast.featurestore.config import PASSWORD_ENV, StoreOptions, write_repo
from salesforecast.featurestore.store import apply, open_repo
from salesforecast.offline.store import write_feature_tables


def _local_settings(tmp_path: Path, synth_dir: Path) -> Settings:
    settings = Settings(workdir=tmp_path / "work", profile="local")
    raw = load(synth_dir)
    write_feature_tables(settings, build(raw), raw.sources)
    return settings


def test_registry_holds_two_views_two_on_demand_views_and_one_service(
    tmp_path: Path, synth_dir: Path
) -> None:
    settings = _local_settings(tmp_path, synth_dir)
    summary = apply(open_repo(settings))
    store = FeatureStore(repo_path=summary["repo"])  # a fresh client reads what was registered

    views = {fv.name: fv for fv in store.list_feature_views()}
    assert set(views) == {"sales_history", "store_external"}
    assert [f.name for f in views["sales_history"].features] == [*SALES_FEATURES, "recent_sales"]
    assert [f.name for f in views["store_external"].features] == [*STORE_FEATURES, *STORE_RECENT_FEATURES]
    assert views["sales_history"].entities == ["series"] and views["store_external"].entities == ["store"]
    assert store.get_entity("series").join_key == "store_dept"

    odfvs = {v.name: v for v in store.list_on_demand_feature_views()}
    assert set(odfvs) == {"seasonality", "promotion"}
    assert all(v.mode == "python" for v in odfvs.values())
    assert [f.name for f in odfvs["seasonality"].features] == list(SEASONALITY_SCHEMA)
    assert [f.name for f in odfvs["promotion"].features] == list(PROMOTION_SCHEMA)

    services = store.list_feature_services()
    assert [s.name for s in services] == ["demand_forecasting"]
    served = {(p.name, f.name) for p in services[0].feature_view_projections for f in p.features}
    expected = (
        {("sales_history", n) for n in SALES_FEATURES}
        | {("store_external", n) for n in STORE_FEATURES}
        | {("seasonality", n) for n in SEASONALITY_SCHEMA}
        | {("promotion", n) for n in PROMOTION_SCHEMA}
    )
    assert served == expected
    # The label and the window that contains it are never features of the service.
    assert not {name for _, name in served} & {"weekly_sales", "recent_sales", "is_observed"}


def test_apply_is_idempotent_and_the_feast_cli_reads_the_generated_repo(
    tmp_path: Path, synth_dir: Path
) -> None:
    settings = _local_settings(tmp_path, synth_dir)
    first = apply(open_repo(settings))
    second = apply(open_repo(settings))
    assert second["deleted"] == [] and sorted(first["applied"]) == sorted(second["applied"])

    feast = [sys.executable, "-m", "feast.cli.cli"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [*feast, "apply"], cwd=first["repo"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    listed = subprocess.run(
        [*feast, "feature-services", "list"], cwd=first["repo"], env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0 and "demand_forecasting" in listed.stdout


def test_postgres_config_takes_the_password_from_the_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = "postgresql://alice:s3cret@db.example:6543/feast?sslmode=verify-full"
    settings = Settings(workdir=tmp_path, profile="postgres", pg_dsn=dsn)
    folder, _ = write_repo(settings, StoreOptions(), Path(), Path())
    text = (folder / "feature_store.yaml").read_text()
    assert "s3cret" not in text and "s3cret" not in (folder / "definitions.py").read_text()
    assert text.count("${" + PASSWORD_ENV + "}") == 3  # registry URL, offline and online store

    config = yaml.safe_load(text)
    assert config["registry"]["path"].startswith("postgresql+psycopg://alice:")
    assert "sslmode=verify-full" in config["registry"]["path"]
    assert config["offline_store"]["sslmode"] == config["online_store"]["sslmode"] == "verify-full"
    assert config["offline_store"]["type"].endswith("AsOfPostgreSQLOfflineStore")

    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    loaded = load_repo_config(folder, folder / "feature_store.yaml")
    assert loaded.offline_store.password == loaded.online_store.password == "from-env"
    monkeypatch.setenv(PASSWORD_ENV, "")  # trust authentication: empty, never YAML null
    assert load_repo_config(folder, folder / "feature_store.yaml").online_store.password == ""

    plain = Settings(workdir=tmp_path / "b", profile="postgres", pg_dsn="postgresql://bob@127.0.0.1/x")
    folder, _ = write_repo(plain, StoreOptions(), Path(), Path())
    assert yaml.safe_load((folder / "feature_store.yaml").read_text())["online_store"]["sslmode"] == "prefer"


def test_profile_mistakes_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SalesForecastError, match="postgres profile"):
        write_repo(Settings(workdir=tmp_path), StoreOptions(offline_store="postgres"), Path(), Path())
    with pytest.raises(SalesForecastError, match=r"sales_features\.parquet not found.*features build"):
        open_repo(Settings(workdir=tmp_path / "empty"))


def test_on_demand_views_never_read_sales_and_survive_the_registry(tmp_path: Path, synth_dir: Path) -> None:
    settings = _local_settings(tmp_path, synth_dir)
    store = FeatureStore(repo_path=apply(open_repo(settings))["repo"])
    week = datetime(2011, 11, 25, tzinfo=UTC)  # Thanksgiving week, ISO week 47
    store_week = {
        "total_markdown": [1000.0, None],
        "markdown1": [600.0, 0.0],
        "markdown2": [400.0, 0.0],
        "markdown3": [0.0, 0.0],
        "markdown4": [0.0, 0.0],
        "markdown5": [0.0, 0.0],
        "is_holiday": [True, False],
        "store_size": [100_000, 100_000],
    }
    for name, inputs, local in (
        ("seasonality", {"date": [week]}, on_demand.seasonality_features),
        ("promotion", store_week, on_demand.promotion_features),
    ):
        udf = store.get_on_demand_feature_view(name).feature_transformation.udf
        # No sales in the inputs at all: a view reading the target would raise KeyError here.
        assert udf(dict(inputs)) == local(dict(inputs))
    season = on_demand.seasonality_features({"date": [week]})
    assert season["week_of_year"] == [47] and season["days_to_christmas"] == [30]
    promo = on_demand.promotion_features(store_week)
    assert promo["holiday_markdown"] == [1000.0, None] and promo["markdown1_share"] == [0.6, None]
    assert promo["markdown_per_ksqft"][0] == pytest.approx(10.0)
