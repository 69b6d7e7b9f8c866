"""Load the latest feature rows of every series and store into the online store.

`materialize(settings, end=...)` writes, per key, the latest row dated at or before `end` (default:
the last week with sales, so the online store matches the last training-set row of each series).
The offline store returns one row per key (`pull_latest_features`), so the local and Ray engines
write the same rows whatever order their batches arrive in. With `--compute ray` Feast's Ray engine
does the work, on a local Ray started with `ray_num_cpus` CPUs or on the cluster at `ray_address`.
"""

from __future__ import annotations

import contextlib
import io
import time
from datetime import UTC, datetime

import duckdb

from salesforecast.config import Settings
from salesforecast.errors import SalesForecastError, StoreError
from salesforecast.featurestore.config import StoreOptions
from salesforecast.featurestore.history import offline_parquet
from salesforecast.featurestore.store import FeastRepo, open_applied
from salesforecast.offline import postgres

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


def materialize(
    settings: Settings,
    *,
    end: datetime | None = None,
    views: list[str] | None = None,
    options: StoreOptions | None = None,
) -> dict[str, object]:
    """Materialize `views` (default: both batch views) up to `end`; returns a summary."""
    handle = open_applied(settings, options)
    end = end or last_sales_week(handle)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    started = time.perf_counter()
    try:
        # Feast prints a line per view and progress bars; the caller reports the summary.
        with contextlib.redirect_stdout(io.StringIO()):
            handle.store.materialize(start_date=EPOCH, end_date=end, feature_views=views)
    except SalesForecastError:
        raise
    except Exception as exc:  # an engine or store failure: one clear line, the cause chained
        raise StoreError(
            f"materialization into the {settings.profile.value} online store failed: {exc}"
        ) from exc
    return {
        "profile": settings.profile.value,
        "offline_store": handle.offline.value,
        "compute": handle.options.compute.value,
        "end": end.isoformat(),
        "views": views or [fv.name for fv in handle.store.list_feature_views()],
        "seconds": round(time.perf_counter() - started, 2),
    }
