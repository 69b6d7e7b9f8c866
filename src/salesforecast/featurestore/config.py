"""Generate the Feast repository for a profile: `feature_store.yaml` and a tiny `definitions.py`.

The generated folder is `<workdir>/feature_repo/<profile>/`; run any `feast` command there. The
PostgreSQL password is never written: the file says `${SALESFORECAST_PG_PASSWORD}`, which Feast
expands from the environment when it loads the file (`export_password` sets it from the DSN).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from psycopg.conninfo import conninfo_to_dict

from salesforecast.config import Profile, Settings
from salesforecast.errors import SalesForecastError
from salesforecast.feature_repo import PROJECT
from salesforecast.offline.files import atomic_write

PASSWORD_ENV = "SALESFORECAST_PG_PASSWORD"
ASOF_STORE_TYPE = "salesforecast.featurestore.postgres_offline.AsOfPostgreSQLOfflineStore"
RAY_ENGINE_TYPE = "salesforecast.featurestore.ray_engine.PointInTimeRayComputeEngine"


class _Quoted(str):
    """Dumped in double quotes: an empty expansion must stay an empty string, not YAML null."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Quoted, lambda dumper, data: dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
)


class OfflineStoreKind(StrEnum):
    duckdb = "duckdb"  # Feast's DuckDB offline store over the Parquet tables
    postgres = "postgres"  # Feast's PostgreSQL offline store with a faster join and fetch (postgres_offline)
    postgres_stock = "postgres-stock"  # Feast's PostgreSQL offline store unchanged, for comparison

    @property
    def is_postgres(self) -> bool:
        return self is not OfflineStoreKind.duckdb


class OnlineStoreKind(StrEnum):
    sqlite = "sqlite"  # a file in the repository folder (local profile default)
    postgres = "postgres"  # the database of SALESFORECAST_PG_DSN (postgres profile default)
    redis = "redis"  # SALESFORECAST_REDIS, default 127.0.0.1:6379 (optionally ",db=N")


REDIS_ENV = "SALESFORECAST_REDIS"
DEFAULT_REDIS = "127.0.0.1:6379"
ONLINE_CHOICE_FILE = "online_store.txt"


class Compute(StrEnum):
    local = "local"  # Feast's in-process batch engine
    ray = "ray"  # Feast's `ray.engine` batch engine, with the TTL trap removed (ray_engine)
    ray_stock = "ray-stock"  # Feast's `ray.engine` unchanged: materializes nothing from TTL'd old data


@dataclass(frozen=True)
class StoreOptions:
    """How to run Feast for one call; the profile decides where the registry and online store live."""

    offline_store: OfflineStoreKind | None = None  # None: duckdb for local, postgres for postgres
    compute: Compute = Compute.local
    ray_address: str | None = None  # None: start a local Ray with `ray_num_cpus` CPUs
    ray_num_cpus: int = 2
    online_store: OnlineStoreKind | None = None  # None: the last one chosen, else the profile's

    def __post_init__(self) -> None:
        # Accept plain strings (the command line, callers) and keep enums inside.
        if self.offline_store is not None:
            object.__setattr__(self, "offline_store", OfflineStoreKind(self.offline_store))
        if self.online_store is not None:
            object.__setattr__(self, "online_store", OnlineStoreKind(self.online_store))
        object.__setattr__(self, "compute", Compute(self.compute))

    def offline_for(self, profile: Profile) -> OfflineStoreKind:
        if self.offline_store is not None:
            return self.offline_store
        return OfflineStoreKind.postgres if profile is Profile.postgres else OfflineStoreKind.duckdb

    def online_for(self, settings: Settings) -> OnlineStoreKind:
        """Explicit choice, else the one remembered in the repository folder, else the profile's."""
        if self.online_store is not None:
            return self.online_store
        remembered = repo_dir(settings) / ONLINE_CHOICE_FILE
        if remembered.is_file() and remembered.read_text().strip() in {k.value for k in OnlineStoreKind}:
            return OnlineStoreKind(remembered.read_text().strip())
        return OnlineStoreKind.postgres if settings.profile is Profile.postgres else OnlineStoreKind.sqlite


def parse_options(
    offline_store: str | None = None,
    compute: str = "local",
    ray_address: str | None = None,
    ray_num_cpus: int = 2,
    online_store: str | None = None,
) -> StoreOptions:
    """StoreOptions from command-line strings, with a clear error for an unknown value."""
    for value, kind, flag in (
        (offline_store, OfflineStoreKind, "--offline-store"),
        (compute, Compute, "--compute"),
        (online_store, OnlineStoreKind, "--online-store"),
    ):
        if value is not None and value not in {k.value for k in kind}:
            raise SalesForecastError(f"{flag} {value!r} is not one of {', '.join(k.value for k in kind)}")
    if ray_num_cpus < 1:
        raise SalesForecastError(f"--ray-cpus must be at least 1, got {ray_num_cpus}")
    return StoreOptions(offline_store, compute, ray_address, ray_num_cpus, online_store)  # type: ignore[arg-type]


def repo_dir(settings: Settings) -> Path:
    return settings.workdir / "feature_repo" / settings.profile.value


def derived_dir(settings: Settings) -> Path:
    """Feast-only derived Parquet files, shared by the profiles of one workdir."""
    return settings.workdir / "feature_repo" / "data"


@dataclass(frozen=True)
class PgParams:
    host: str
    port: int
    database: str
    user: str
    sslmode: str
    password: str | None


def pg_params(dsn: str) -> PgParams:
    try:
        params = conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg raises ProgrammingError for a malformed DSN
        raise SalesForecastError(
            f"SALESFORECAST_PG_DSN is not a valid PostgreSQL connection string ({exc})"
        ) from None
    return PgParams(
        host=str(params.get("host") or "127.0.0.1"),
        port=int(params.get("port") or 5432),
        database=str(params.get("dbname") or "postgres"),
        user=str(params.get("user") or os.environ.get("USER", "postgres")),
        # Explicit: Feast's PostgreSQL config defaults to `require`, which a local server refuses.
        sslmode=str(params.get("sslmode") or "prefer"),
        password=params.get("password"),  # type: ignore[arg-type]
    )


def export_password(settings: Settings) -> None:
    """Make `${SALESFORECAST_PG_PASSWORD}` resolvable: from the DSN if it has one, else keep the env."""
    password = pg_params(settings.pg_dsn).password
    if password is not None:
        os.environ[PASSWORD_ENV] = password
    else:
        os.environ.setdefault(PASSWORD_ENV, "")


def _postgres_block(pg: PgParams) -> dict[str, Any]:
    return {
        "host": pg.host,
        "port": pg.port,
        "database": pg.database,
        "db_schema": "public",
        "user": pg.user,
        "password": _Quoted("${" + PASSWORD_ENV + "}"),
        "sslmode": pg.sslmode,
    }


RAY_SOCKET_ROOM = 48  # Ray's socket paths add ~60 bytes to its temp dir; AF_UNIX allows 107


def ray_temp_dir(settings: Settings) -> Path:
    """`<workdir>/ray`, reached through a short link in the system temp dir when the path is long.

    Ray puts its Unix sockets under its temp dir and refuses paths longer than 107 bytes; the
    files still live in the work directory.
    """
    target = (settings.workdir / "ray").resolve()
    target.mkdir(parents=True, exist_ok=True)
    if len(str(target)) <= RAY_SOCKET_ROOM:
        return target
    link = Path(tempfile.gettempdir()) / f"sf-ray-{hashlib.sha1(str(target).encode()).hexdigest()[:10]}"
    if not (link.is_symlink() and link.resolve() == target):
        link.unlink(missing_ok=True)
        link.symlink_to(target, target_is_directory=True)
    return link


def _ray_block(settings: Settings, options: StoreOptions) -> dict[str, Any]:
    engine = "ray.engine" if options.compute is Compute.ray_stock else RAY_ENGINE_TYPE
    block: dict[str, Any] = {"type": engine, "enable_ray_logging": False}
    if options.ray_address:
        # A running cluster has its own resources and temp dir; ray.init refuses num_cpus then.
        block["ray_address"] = options.ray_address
        block["ray_conf"] = {"include_dashboard": False}
    else:
        block["ray_conf"] = {
            "num_cpus": options.ray_num_cpus,
            "include_dashboard": False,
            "_temp_dir": str(ray_temp_dir(settings)),
        }
    return block


def online_store_block(settings: Settings, kind: OnlineStoreKind) -> dict[str, Any]:
    if kind is OnlineStoreKind.postgres:
        return {"type": "postgres", **_postgres_block(pg_params(settings.pg_dsn))}
    if kind is OnlineStoreKind.redis:
        return {"type": "redis", "connection_string": os.environ.get(REDIS_ENV) or DEFAULT_REDIS}
    return {"type": "sqlite", "path": "data/online_store.db"}


def feature_store_config(settings: Settings, options: StoreOptions) -> dict[str, Any]:
    """The content of `feature_store.yaml` for the settings' profile."""
    config: dict[str, Any] = {"project": PROJECT, "provider": "local"}
    offline = options.offline_for(settings.profile)
    if settings.profile is Profile.postgres:
        pg = pg_params(settings.pg_dsn)
        url = (
            f"postgresql+psycopg://{quote(pg.user, safe='')}:${{{PASSWORD_ENV}}}@{pg.host}:{pg.port}/"
            f"{quote(pg.database, safe='')}?sslmode={pg.sslmode}"
        )
        config["registry"] = {
            "registry_type": "sql",
            "path": url,
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": {"echo": False, "pool_pre_ping": True},
        }
    else:
        config["registry"] = {"registry_type": "file", "path": "data/registry.db", "cache_ttl_seconds": 60}
    config["online_store"] = online_store_block(settings, options.online_for(settings))
    if offline.is_postgres:
        if settings.profile is not Profile.postgres:
            raise SalesForecastError(
                "the PostgreSQL offline store needs the postgres profile (--profile postgres)"
            )
        config["offline_store"] = {
            "type": "postgres" if offline is OfflineStoreKind.postgres_stock else ASOF_STORE_TYPE,
            **_postgres_block(pg_params(settings.pg_dsn)),
            # Entity rows given as SQL are used in place, not copied into a temporary table.
            "entity_select_mode": "embed_query",
        }
    else:
        config["offline_store"] = {"type": "duckdb"}
    if options.compute is not Compute.local:
        config["batch_engine"] = _ray_block(settings, options)
    else:
        config["batch_engine"] = {"type": "local"}
    # The offline store returns one row per key: the engines then never depend on write order.
    config["materialization"] = {"pull_latest_features": True}
    config["entity_key_serialization_version"] = 3
    return config


DEFINITIONS_TEMPLATE = '''\
"""Generated by salesforecast ({profile} profile, {offline} offline store); do not edit.

The definitions live in the package `salesforecast.feature_repo`; this file binds them for the
`feast` command line. Regenerate it with `salesforecast features apply`.
"""

from salesforecast.feature_repo import build_repo
from salesforecast.feature_repo.sources import {sources_import}

_repo = build_repo({sources_call})
{bindings}
'''


def definitions_source(settings: Settings, options: StoreOptions, sales_path: Path, store_path: Path) -> str:
    offline = options.offline_for(settings.profile)
    if offline.is_postgres:
        sources_import, sources_call = "postgres_sources", "postgres_sources()"
    else:
        sources_import = "parquet_sources"
        sources_call = f"parquet_sources({str(sales_path.resolve())!r}, {str(store_path.resolve())!r})"
    from salesforecast.feature_repo import Repo

    bindings = "\n".join(f"{name} = _repo.{name}" for name in Repo.__dataclass_fields__)
    return DEFINITIONS_TEMPLATE.format(
        profile=settings.profile.value,
        offline=offline.value,
        sources_import=sources_import,
        sources_call=sources_call,
        bindings=bindings,
    )


def write_if_changed(path: Path, text: str) -> bool:
    """Atomic, and untouched when the content is the same (so re-runs are idempotent)."""
    if path.is_file() and path.read_text() == text:
        return False
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return True


def write_repo(
    settings: Settings, options: StoreOptions, sales_path: Path, store_path: Path
) -> tuple[Path, str]:
    """Write `feature_store.yaml` and `definitions.py`; return the folder and a fingerprint of both."""
    folder = repo_dir(settings)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    config_text = yaml.dump(feature_store_config(settings, options), Dumper=_Dumper, sort_keys=False)
    definitions = definitions_source(settings, options, sales_path, store_path)
    write_if_changed(folder / "feature_store.yaml", config_text)
    write_if_changed(folder / "definitions.py", definitions)
    write_if_changed(folder / ".feastignore", "data/\n")
    if options.online_store is not None:  # remembered for the commands that do not repeat the option
        write_if_changed(folder / ONLINE_CHOICE_FILE, options.online_store.value + "\n")
    digest = hashlib.sha256((config_text + definitions).encode()).hexdigest()
    return folder, digest
