"""Feast's Ray engine (a local Ray with 2 CPUs) materializes the same rows as the local engine; the
unchanged `ray.engine` shows the TTL trap it works around (nothing written, no error)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest

from salesforecast.config import Settings
from salesforecast.data.ingest import load
from salesforecast.features.build import build
from salesforecast.featurestore.config import StoreOptions
from salesforecast.featurestore.materialize import materialize
from salesforecast.featurestore.store import open_applied, serving_refs
from salesforecast.offline.store import write_feature_tables

ray = pytest.importorskip("ray")


def _online(settings: Settings, keys: pd.DataFrame, when: pd.Timestamp) -> pd.DataFrame:
    store = open_applied(settings).store  # the local engine is enough to read
    rows = [
        {"store_dept": int(k), "store": int(k) // 1000, "date": when.to_pydatetime()}
        for k in keys["store_dept"]
    ]
    response = store.get_online_features(features=serving_refs(store), entity_rows=rows)
    return response.to_df(include_event_timestamps=True)


def test_ray_engine_materializes_what_the_local_engine_does(tmp_path: Path, synth_dir: Path) -> None:
    raw = load(synth_dir)
    tables = build(raw)
    # A small slice: the last year of every series.
    last = tables.sales["date"].max()
    tables.sales = tables.sales[tables.sales["date"] > last - pd.Timedelta(weeks=52)].reset_index(drop=True)
    keys = tables.sales[["store_dept"]].drop_duplicates().reset_index(drop=True)

    runs = {}
    try:
        for compute in ("local", "ray", "ray-stock"):
            settings = Settings(workdir=tmp_path / compute, profile="local")
            write_feature_tables(settings, tables, raw.sources)
            summary = materialize(settings, options=StoreOptions(compute=compute, ray_num_cpus=2))
            assert summary["compute"] == compute
            runs[compute] = _online(settings, keys, last)
    finally:
        ray.shutdown()
        for link in Path(tempfile.gettempdir()).glob("sf-ray-*"):  # short links to tmp_path/*/ray
            if link.is_symlink() and str(link.readlink()).startswith(str(tmp_path)):
                link.unlink()

    local, on_ray, stock = runs["local"], runs["ray"], runs["ray-stock"]
    assert local["sales_lag_1"].notna().sum() > 0.9 * len(keys)
    pd.testing.assert_frame_equal(on_ray, local)
    # Feast 0.67's ray.engine drops every row older than now - TTL: an empty online store, no error.
    assert stock["sales_lag_1"].isna().all() and stock["temperature"].isna().all()
