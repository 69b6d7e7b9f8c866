"""The feature build on the real Kaggle files, for both profiles."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from salesforecast.config import Profile, Settings
from salesforecast.data.ingest import RawData, load
from salesforecast.features.build import FeatureTables, build
from salesforecast.offline.store import read_feature_table, write_feature_tables


@pytest.fixture(scope="module")
def real(real_data_dir: Path) -> tuple[RawData, FeatureTables]:
    raw = load(real_data_dir)
    return raw, build(raw)


def test_validation_figures_match_the_source(real: tuple[RawData, FeatureTables]) -> None:
    raw, _ = real
    assert len(raw.train) == 421_570
    assert raw.train.groupby(["store", "dept"]).ngroups == 3_331
    assert int((raw.train["weekly_sales"] < 0).sum()) == 1_285
    assert int((raw.train["weekly_sales"] == 0).sum()) == 73
    assert len(raw.features) == 8_190 and len(raw.stores) == 45
    assert raw.test is not None and len(raw.test) == 115_064


def test_local_profile_keeps_every_original_target(real, tmp_path: Path) -> None:
    raw, tables = real
    settings = Settings(workdir=tmp_path, profile=Profile.local)
    write_feature_tables(settings, tables, raw.sources)
    sales = read_feature_table(settings, "sales_features")
    observed = sales[sales["is_observed"]]
    assert len(observed) == 421_570
    assert sales["weekly_sales"].notna().sum() == 421_570
    total = sum(Decimal(f"{v:.2f}") for v in observed["weekly_sales"])
    assert total == Decimal("6737218987.11")
    # Each observed row carries exactly the value in train.csv for its (store, dept, date).
    original = raw.train.assign(date=raw.train["date"].dt.tz_localize("UTC"))
    joined = observed.merge(original, on=["store", "dept", "date"], suffixes=("", "_raw"), validate="1:1")
    assert len(joined) == 421_570
    np.testing.assert_array_equal(joined["weekly_sales"], joined["weekly_sales_raw"])
    assert len(read_feature_table(settings, "store_features")) == 8_190
    assert sales.groupby("store_dept").ngroups == 3_331


@pytest.mark.postgres
def test_postgres_profile_tables_and_rerun(real, pg_dsn: str) -> None:
    raw, tables = real
    settings = Settings(profile=Profile.postgres, pg_dsn=pg_dsn)
    for _ in range(2):  # a second run replaces, never duplicates
        write_feature_tables(settings, tables, raw.sources)
        with psycopg.connect(pg_dsn) as conn:
            n, observed, total = conn.execute(
                "SELECT count(*), count(weekly_sales), round(sum(weekly_sales)::numeric, 2) "
                "FROM sales_features"
            ).fetchone()
            stores = conn.execute("SELECT count(*) FROM store_features").fetchone()[0]
            indexes = {
                r[0]
                for r in conn.execute(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'sales_features'"
                ).fetchall()
            }
        assert (n, observed, stores) == (len(tables.sales), 421_570, 8_190)
        assert total == Decimal("6737218987.11")
        assert {"idx_sales_date", "idx_sales_store_dept", "idx_sales_store_dept_date"} <= indexes
    assert pd.Timestamp("2010-02-05", tz="UTC") == tables.sales["date"].min()
