"""Load the latest feature rows of every series and store into the online store.

`materialize(settings, end=...)` writes, per key, the latest row dated at or before `end` (default:
the last week with sales, so the online store matches the last training-set row of each series).
The offline store returns one row per key (`pull_latest_features`), so the local and Ray engines
write the same rows whatever order their batches arrive in. With `--compute ray` Feast's Ray engine
does the work, on a local Ray started with `ray_num_cpus` CPUs or on the cluster at `ray_address`.

Incremental: each view starts where its last materialization ended (Feast records the intervals in
the registry), so a second run with no new week writes nothing. A full run (from 1970) happens with
`full=True` and whenever the repository definitions, the online store or the offline tables changed
since the last run (`data/materialized.json` holds their fingerprint): a rebuilt offline table keeps
its dates, so the intervals alone would miss it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
from datetime import UTC, datetime

import duckdb

from salesforecast.config import Settings
from salesforecast.errors import SalesForecastError, StoreError
from salesforecast.featurestore.config import StoreOptions
from salesforecast.featurestore.history import offline_parquet
from salesforecast.featurestore.store import FeastRepo, open_applied
from salesforecast.offline import postgres
from salesforecast.offline.files import write_json
from salesforecast.offline.store import manifest_path

# The offline table and key column that each batch view reads.
VIEW_TABLES = {
    "sales_history": ("sales_features", "store_dept"),
    "store_external": ("store_features", "store"),
}

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def last_sales_week(handle: FeastRepo) -> datetime:
    """The latest `date` of `sales_features` in the offline store the repository reads."""
    if handle.offline.is_postgres:
        with postgres.connect(handle.settings.pg_dsn) as conn:
            row = conn.execute("SELECT max(date) FROM sales_features").fetchone()
    else:
        path = str(offline_parquet(handle.settings, "sales_features")).replace("'", "''")
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            row = con.execute(f"SELECT max(date) FROM read_parquet('{path}')").fetchone()
    if not row or row[0] is None:
        raise SalesForecastError("sales_features is empty: nothing to materialize")
    value: datetime = row[0]
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def count_rows(handle: FeastRepo, view: str, start: datetime, end: datetime) -> int:
    """Keys with a row dated in [start, end]: what materializing the view writes (one row per key)."""
    table, key = VIEW_TABLES[view]
    if handle.offline.is_postgres:
        with postgres.connect(handle.settings.pg_dsn) as conn:
            row = conn.execute(
                f"SELECT count(DISTINCT {key}) FROM {table} WHERE date BETWEEN %s AND %s", (start, end)
            ).fetchone()
    else:
        path = str(offline_parquet(handle.settings, table)).replace("'", "''")
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            row = con.execute(
                f"SELECT count(DISTINCT {key}) FROM read_parquet('{path}') WHERE date BETWEEN ? AND ?",
                [start, end],
            ).fetchone()
    return int(row[0]) if row else 0


def _state(handle: FeastRepo) -> str:
    manifest = manifest_path(handle.settings)
    data = manifest.read_bytes() if manifest.is_file() else b""
    return hashlib.sha256(handle.fingerprint.encode() + data).hexdigest()


def _last_end(handle: FeastRepo, view: str) -> datetime | None:
    fv = handle.store.registry.get_feature_view(view, handle.store.project, allow_cache=False)
    last = fv.most_recent_end_time
    if last is None:
        return None
    return last if last.tzinfo else last.replace(tzinfo=UTC)


def materialize(
    settings: Settings,
    *,
    end: datetime | None = None,
    views: list[str] | None = None,
    options: StoreOptions | None = None,
    full: bool = False,
) -> dict[str, object]:
    """Materialize `views` (default: both batch views) up to `end`, incrementally; returns a summary."""
    handle = open_applied(settings, options)
    if full:  # asked for: apply again, which re-creates online tables lost with a reset store
        from salesforecast.featurestore.store import apply

        apply(handle)
    end = end or last_sales_week(handle)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    names = views or [fv.name for fv in handle.store.list_feature_views()]
    marker = handle.folder / "data" / "materialized.json"
    state = _state(handle)
    full = full or not marker.is_file() or json.loads(marker.read_text()).get("state") != state
    started = time.perf_counter()
    rows: dict[str, int] = {}
    try:
        for name in names:
            last = None if full else _last_end(handle, name)
            start = last or EPOCH
            if start >= end:
                rows[name] = 0
                continue
            rows[name] = count_rows(handle, name, start, end)
            # Feast prints a line per view and progress bars; the caller reports the summary.
            with contextlib.redirect_stdout(io.StringIO()):
                handle.store.materialize(start_date=start, end_date=end, feature_views=[name])
    except SalesForecastError:
        raise
    except Exception as exc:  # an engine or store failure: one clear line, the cause chained
        raise StoreError(
            f"materialization into the {handle.options.online_for(settings).value} online store failed: {exc}"
        ) from exc
    write_json(marker, {"state": state, "end": end.isoformat()})
    return {
        "profile": settings.profile.value,
        "offline_store": handle.offline.value,
        "online_store": handle.options.online_for(settings).value,
        "compute": handle.options.compute.value,
        "end": end.isoformat(),
        "views": names,
        "full": full,
        "rows": rows,
        "rows_written": sum(rows.values()),
        "seconds": round(time.perf_counter() - started, 2),
    }
