"""Open the Feast store of a profile and keep its registry in step with the package's definitions."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from feast import FeatureStore
from feast.errors import FeastObjectNotFoundException
from feast.feature_view import DUMMY_ENTITY_NAME
from feast.repo_contents import RepoContents
from feast.repo_operations import extract_objects_for_apply_delete

import salesforecast.feature_repo as feature_repo_pkg
from salesforecast.config import Profile, Settings
from salesforecast.errors import SalesForecastError, StoreError
from salesforecast.feature_repo import PROJECT, Repo, build_repo, parquet_sources, postgres_sources
from salesforecast.feature_repo.services import SERVICE_NAME, SERVING_ONLY_FEATURES
from salesforecast.featurestore.config import (
    OfflineStoreKind,
    StoreOptions,
    export_password,
    write_repo,
)
from salesforecast.featurestore.history import sales_history_parquet, store_history_parquet
from salesforecast.offline import postgres
from salesforecast.offline.files import write_json

log = logging.getLogger(__name__)


@dataclass
class FeastRepo:
    """A generated repository, the store opened on it and the objects it must hold."""

    settings: Settings
    options: StoreOptions
    offline: OfflineStoreKind
    folder: Path
    store: FeatureStore
    repo: Repo
    fingerprint: str

    @property
    def marker(self) -> Path:
        return self.folder / "data" / "applied.json"


def _package_digest() -> str:
    """Changes whenever a definition in `salesforecast.feature_repo` changes."""
    digest = hashlib.sha256()
    for path in sorted(Path(feature_repo_pkg.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _check_postgres_tables(settings: Settings) -> None:
    with postgres.connect(settings.pg_dsn) as conn:
        for table in ("sales_features", "store_features"):
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
                raise SalesForecastError(
                    f"table {table} not found in PostgreSQL: build it with `salesforecast features build "
                    "--data-dir DIR --profile postgres`"
                )


def open_repo(settings: Settings, options: StoreOptions | None = None) -> FeastRepo:
    """Generate the repository for the settings and open it (without applying)."""
    options = options or StoreOptions()
    offline = options.offline_for(settings.profile)
    if settings.profile is Profile.postgres:
        export_password(settings)
        postgres.ensure_database(settings.pg_dsn)
    if offline.is_postgres:
        _check_postgres_tables(settings)
        sources = postgres_sources()
        sales_path = store_path = Path()
    else:
        sales_path = sales_history_parquet(settings)
        store_path = store_history_parquet(settings)
        sources = parquet_sources(sales_path, store_path)
    folder, digest = write_repo(settings, options, sales_path, store_path)
    try:
        store = FeatureStore(repo_path=str(folder))
    except Exception as exc:  # Feast raises many types for an unreachable registry or bad config
        raise StoreError(f"cannot open the Feast repository in {folder}: {exc}") from exc
    return FeastRepo(
        settings=settings,
        options=options,
        offline=offline,
        folder=folder,
        store=store,
        repo=build_repo(sources),
        fingerprint=hashlib.sha256((digest + _package_digest()).encode()).hexdigest(),
    )


def _contents(repo: Repo) -> RepoContents:
    return RepoContents(
        projects=[repo.project],
        data_sources=[repo.sales_features, repo.store_features, repo.forecast_week],
        entities=[repo.store, repo.series],
        feature_views=[repo.sales_history, repo.store_external],
        feature_services=[repo.demand_forecasting],
        on_demand_feature_views=[repo.seasonality, repo.promotion],
        stream_feature_views=[],
        label_views=[],
        permissions=[],
    )


def _drop_sources_of_another_kind(handle: FeastRepo) -> None:
    """Unregister a source whose class changed (e.g. the postgres profile switched to DuckDB).

    Feast 0.67's SQL registry compares a re-applied data source with the stored one by decoding the
    stored proto with the new source's class, which fails (AssertionError) when the class differs.
    """
    registry = handle.store.registry
    for source in (handle.repo.sales_features, handle.repo.store_features):
        try:
            stored = registry.get_data_source(source.name, PROJECT, allow_cache=False)
        except FeastObjectNotFoundException:
            continue
        if type(stored) is not type(source):
            registry.delete_data_source(source.name, PROJECT, commit=True)


def apply(handle: FeastRepo) -> dict[str, object]:
    """The equivalent of `feast apply` in the generated folder: register, update, delete stale objects."""
    started = time.perf_counter()
    store = handle.store
    _drop_sources_of_another_kind(handle)
    to_apply, to_delete, _, _ = extract_objects_for_apply_delete(
        PROJECT, store.registry, _contents(handle.repo)
    )
    # Feast itself registers the placeholder entity of entity-less views on every apply.
    to_delete = [obj for obj in to_delete if getattr(obj, "name", None) != DUMMY_ENTITY_NAME]
    # Feast prints progress bars and diffs; the command line prints its own summary.
    with contextlib.redirect_stdout(io.StringIO()):
        store.apply(to_apply, objects_to_delete=to_delete, partial=False)
    write_json(handle.marker, {"fingerprint": handle.fingerprint})
    return {
        "repo": str(handle.folder),
        "applied": sorted(getattr(obj, "name", "?") for obj in to_apply),
        "deleted": sorted(getattr(obj, "name", "?") for obj in to_delete),
        "seconds": round(time.perf_counter() - started, 2),
    }


def ensure_applied(handle: FeastRepo) -> None:
    """Apply when the definitions or the generated configuration changed, or the registry lost them."""
    marker = handle.marker
    if marker.is_file() and json.loads(marker.read_text()).get("fingerprint") == handle.fingerprint:
        try:
            handle.store.registry.get_feature_service(SERVICE_NAME, PROJECT, allow_cache=False)
            return
        except FeastObjectNotFoundException:
            log.info("registry has no %s; applying", SERVICE_NAME)
    apply(handle)


def open_applied(settings: Settings, options: StoreOptions | None = None) -> FeastRepo:
    handle = open_repo(settings, options)
    ensure_applied(handle)
    return handle


def serving_refs(store: FeatureStore) -> list[str]:
    """The service's features plus the serving-only ones: what one online read for a forecast asks for.

    Entity rows need `store_dept`, `store` and `date` (the week to predict, for `seasonality`).
    """
    service = store.get_feature_service(SERVICE_NAME)
    refs = [f"{p.name_to_use()}:{f.name}" for p in service.feature_view_projections for f in p.features]
    return refs + list(SERVING_ONLY_FEATURES)
