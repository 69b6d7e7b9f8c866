"""Point-in-time correctness on hand-made rows: a feature row dated after an entity's timestamp never
joins to it, for each view and each offline store (DuckDB, our PostgreSQL store, Feast's own)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from salesforecast.config import Settings
from salesforecast.data.ingest import load
from salesforecast.features.build import FeatureTables, build
from salesforecast.featurestore.config import StoreOptions
from salesforecast.featurestore.retrieval import to_arrow
from salesforecast.featurestore.store import open_applied
from salesforecast.offline.store import write_feature_tables

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
FEATURES = [
    "sales_history:sales_lag_1",
    "store_external:temperature",
    "store_external:total_markdown",
    "promotion:markdown_per_ksqft",
]


@pytest.fixture(params=["duckdb", "postgres", "postgres-stock"])
def offline_store(request: pytest.FixtureRequest) -> str:
    return request.param


def _marked_tables(synth_dir: Path) -> tuple[FeatureTables, dict[str, object], dict[str, str]]:
    """Synthetic tables with distinctive values in two consecutive weeks of one series and store."""
    raw = load(synth_dir)
    tables = build(raw)
    sales, stores = tables.sales, tables.store
    key = int(sales["store_dept"].iloc[0])
    store = key // 1000
    weeks = sales.loc[sales["store_dept"] == key, "date"].sort_values().reset_index(drop=True)
    t0, t1 = weeks[10], weeks[11]
    for when, lag, temp in ((t0, 111.0, 11.0), (t1, 222.0, 22.0)):
        sales.loc[(sales["store_dept"] == key) & (sales["date"] == when), "sales_lag_1"] = lag
        stores.loc[(stores["store"] == store) & (stores["date"] == when), "temperature"] = temp
    lag_before = sales.loc[(sales["store_dept"] == key) & (sales["date"] == weeks[9]), "sales_lag_1"].item()
    temp_before = stores.loc[(stores["store"] == store) & (stores["date"] == weeks[9]), "temperature"].item()
    case = {"key": key, "store": store, "first": weeks[0], "t0": t0, "t1": t1}
    case |= {"lag_before": lag_before, "temp_before": temp_before}
    return tables, case, raw.sources


def test_no_feature_row_dated_after_the_entity_joins(
    tmp_path: Path, synth_dir: Path, offline_store: str, request: pytest.FixtureRequest
) -> None:
    profile = "local" if offline_store == "duckdb" else "postgres"
    pg_dsn = request.getfixturevalue("pg_dsn") if profile == "postgres" else Settings().pg_dsn
    settings = Settings(workdir=tmp_path / "work", profile=profile, pg_dsn=pg_dsn)
    tables, case, sources = _marked_tables(synth_dir)
    write_feature_tables(settings, tables, sources)
    store = open_applied(settings, StoreOptions(offline_store=offline_store)).store

    t0, t1 = case["t0"], case["t1"]
    asked = [  # (entity timestamp, expected sales_lag_1, expected temperature); NaN: nothing joins
        (case["first"] - SECOND, np.nan, np.nan),  # before the series' first row
        (t0 - DAY, case["lag_before"], case["temp_before"]),  # the week before t0, 6 days old
        (t0 - SECOND, np.nan, np.nan),  # the week before t0 has expired, t0 is in the future
        (t0, 111.0, 11.0),
        (t0 + 3 * DAY, 111.0, 11.0),
        (t0 + 6 * DAY, 111.0, 11.0),  # the last instant the week-t0 row is valid (TTL 6 days)
        (t0 + 6 * DAY + SECOND, np.nan, np.nan),  # t0 expired; the t1 row is still in the future
        (t1 - SECOND, np.nan, np.nan),
        (t1, 222.0, 22.0),
    ]
    entity = pd.DataFrame(
        {
            "store_dept": np.int64(case["key"]),
            "store": np.int32(case["store"]),
            "event_timestamp": pd.to_datetime([a[0] for a in asked], utc=True),
            "row": np.arange(len(asked)),
        }
    )
    result = to_arrow(store.get_historical_features(entity_df=entity, features=FEATURES)).to_pandas()
    result = result.sort_values("row").reset_index(drop=True)

    np.testing.assert_array_equal(result["sales_lag_1"].to_numpy(float), [a[1] for a in asked])
    np.testing.assert_array_equal(result["temperature"].to_numpy(float), [a[2] for a in asked])
    # promotion is computed from the store row that joined, and is missing when none did
    sizes = tables.store.set_index("store")["store_size"].groupby(level=0).first()
    expected = 1000 * result["total_markdown"] / sizes[case["store"]]
    np.testing.assert_allclose(result["markdown_per_ksqft"].astype(float), expected.astype(float))
    assert result["markdown_per_ksqft"].isna().to_numpy()[[0, 2, 6, 7]].all()
