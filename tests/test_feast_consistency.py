"""The training set is the same in both profiles, one row per requested (series, week); the faster
retrieval paths return what Feast's own paths return; online values equal the latest offline row."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from salesforecast.config import Settings
from salesforecast.data.ingest import load
from salesforecast.feature_repo.sources import RECENT_WEEKS
from salesforecast.features.build import build
from salesforecast.featurestore.config import StoreOptions
from salesforecast.featurestore.materialize import materialize
from salesforecast.featurestore.retrieval import to_arrow
from salesforecast.featurestore.store import open_applied, serving_refs
from salesforecast.featurestore.training_set import KEYS, build_training_set
from salesforecast.offline.store import write_feature_tables


def _both_profiles(tmp_path: Path, synth_dir: Path, pg_dsn: str) -> tuple[Settings, Settings, pd.DataFrame]:
    """One workdir with the same tables as Parquet (local) and in PostgreSQL (postgres)."""
    raw = load(synth_dir)
    tables = build(raw)
    local = Settings(workdir=tmp_path / "work", profile="local", pg_dsn=pg_dsn)
    postgres = Settings(workdir=tmp_path / "work", profile="postgres", pg_dsn=pg_dsn)
    for settings in (local, postgres):
        write_feature_tables(settings, tables, raw.sources)
    return local, postgres, tables.sales


def test_training_set_has_one_row_per_series_week_and_is_identical_in_both_profiles(
    tmp_path: Path, synth_dir: Path, pg_dsn: str
) -> None:
    local, postgres, sales = _both_profiles(tmp_path, synth_dir, pg_dsn)
    frames = {
        "local": build_training_set(local),
        "postgres": build_training_set(postgres),
        "postgres+duckdb": build_training_set(postgres, options=StoreOptions(offline_store="duckdb")),
    }
    grid = sales[KEYS].sort_values(KEYS, ignore_index=True)
    for name, frame in frames.items():
        assert not frame.duplicated(KEYS).any(), name
        pd.testing.assert_frame_equal(frame[KEYS], grid, check_dtype=False, obj=name)
        assert frame.notna().any().all(), f"{name}: a column that never joined"
    pd.testing.assert_frame_equal(frames["local"], frames["postgres"])
    pd.testing.assert_frame_equal(frames["local"], frames["postgres+duckdb"])
    labels = sales.set_index(KEYS)["weekly_sales"].reindex(pd.MultiIndex.from_frame(grid))
    np.testing.assert_array_equal(frames["local"]["weekly_sales"].to_numpy(), labels.to_numpy())

    # A sampled, dated request: whole series, every one of their weeks in range, nothing else.
    sample = build_training_set(postgres, sample_size=300, start="2011-01-01", end="2011-06-30")
    expected = sales[
        sales["date"].between(pd.Timestamp("2011-01-01", tz=UTC), pd.Timestamp("2011-06-30", tz=UTC))
    ]
    expected = expected.merge(sample[["store", "dept"]].drop_duplicates(), on=["store", "dept"])
    pd.testing.assert_frame_equal(
        sample[KEYS], expected[KEYS].sort_values(KEYS, ignore_index=True), check_dtype=False
    )
    assert 1 < sample.groupby(["store", "dept"]).ngroups < sales["store_dept"].nunique()
    assert len(sample) <= 300 or sample.groupby(["store", "dept"]).ngroups == 1


@pytest.mark.parametrize("offline_store", ["duckdb", "postgres"])
def test_faster_paths_return_what_feast_returns(
    tmp_path: Path, synth_dir: Path, pg_dsn: str, offline_store: str
) -> None:
    local, postgres, sales = _both_profiles(tmp_path, synth_dir, pg_dsn)
    settings = postgres if offline_store == "postgres" else local
    rng = np.random.default_rng(3)
    rows = sales.iloc[rng.choice(len(sales), 400, replace=False)]
    entity = pd.DataFrame(
        {
            "store_dept": rows["store_dept"].to_numpy(),
            "store": rows["store"].to_numpy(),
            "date": rows["date"].to_numpy(),
            # off-grid timestamps too, so the TTL and "latest before" both matter
            "event_timestamp": rows["date"] + pd.to_timedelta(rng.integers(-8, 8, len(rows)), unit="D"),
        }
    )
    ours = open_applied(settings, StoreOptions(offline_store=offline_store)).store
    service = ours.get_feature_service("demand_forecasting")
    fast = to_arrow(ours.get_historical_features(entity_df=entity, features=service)).to_pandas()
    reference_store = "postgres-stock" if offline_store == "postgres" else "duckdb"
    stock = open_applied(settings, StoreOptions(offline_store=reference_store)).store
    slow = stock.get_historical_features(entity_df=entity, features=service).to_df()

    order = ["store_dept", "event_timestamp"]
    fast = fast.sort_values(order, ignore_index=True)
    slow = slow.sort_values(order, ignore_index=True)[fast.columns]
    pd.testing.assert_frame_equal(fast, slow, check_dtype=False)
    assert fast["sales_lag_1"].isna().mean() < 0.9  # the comparison is not between empty frames


@pytest.mark.parametrize("profile", ["local", "postgres"])
def test_online_features_equal_the_latest_training_row(
    tmp_path: Path, synth_dir: Path, pg_dsn: str, profile: str
) -> None:
    local, postgres, _ = _both_profiles(tmp_path, synth_dir, pg_dsn)
    settings = local if profile == "local" else postgres
    summary = materialize(settings)
    training = build_training_set(settings)
    last_week = training["date"].max()
    assert summary["end"] == last_week.isoformat()
    latest = training[training["date"] == last_week].reset_index(drop=True)
    assert len(latest) > 10

    store = open_applied(settings).store
    rows = [
        {"store_dept": int(s) * 1000 + int(d), "store": int(s), "date": last_week.to_pydatetime()}
        for s, d in zip(latest["store"], latest["dept"], strict=True)
    ]
    online = pd.DataFrame(store.get_online_features(features=serving_refs(store), entity_rows=rows).to_dict())
    features = [c for c in training.columns if c not in [*KEYS, "weekly_sales", "is_observed"]]
    pd.testing.assert_frame_equal(
        online[features].astype(float), latest[features].astype(float), check_names=False
    )
    # recent_sales: RECENT_WEEKS weeks ending with the last week itself; its last two are y(T) and y(T-1)
    window = np.array(online["recent_sales"].tolist(), dtype=float)
    assert window.shape == (len(latest), RECENT_WEEKS)
    np.testing.assert_array_equal(window[:, -1], latest["weekly_sales"].to_numpy(float))
    np.testing.assert_array_equal(window[:, -2], latest["sales_lag_1"].to_numpy(float))
    np.testing.assert_array_equal(window[:, -5], latest["sales_lag_4"].to_numpy(float))
