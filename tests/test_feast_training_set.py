"""The training-set command: whole-series sampling, the Parquet cache and its invalidation, `--out`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from salesforecast.cli import app
from salesforecast.config import Settings
from salesforecast.data.ingest import load
from salesforecast.errors import SalesForecastError
from salesforecast.feature_repo.views import STORE_FEATURES
from salesforecast.features.build import build
from salesforecast.featurestore.training_set import KEYS, build_training_set
from salesforecast.offline.store import write_feature_tables


@pytest.fixture
def settings(tmp_path: Path, synth_dir: Path) -> Settings:
    settings = Settings(workdir=tmp_path / "work", profile="local", seed=11)
    raw = load(synth_dir)
    write_feature_tables(settings, build(raw), raw.sources)
    return settings


def test_a_sample_is_whole_series_and_repeatable(settings: Settings) -> None:
    full = build_training_set(settings)
    sample = build_training_set(settings, sample_size=1000)
    again = build_training_set(settings, sample_size=1000, use_cache=False)
    pd.testing.assert_frame_equal(sample, again)

    series = sample.groupby(["store", "dept"]).size()
    assert 1 < len(series) < full.groupby(["store", "dept"]).ngroups
    assert len(sample) <= 1000
    whole = full.merge(series.index.to_frame(index=False), on=["store", "dept"])
    pd.testing.assert_frame_equal(sample, whole)  # every week of every drawn series, nothing else
    other = build_training_set(settings.model_copy(update={"seed": 12}), sample_size=1000)
    assert not other[KEYS].equals(sample[KEYS])


def test_cache_is_used_until_the_offline_tables_change(settings: Settings, synth_dir: Path) -> None:
    first = build_training_set(settings, start="2011-01-01")
    cached = list((settings.workdir / "training_sets").glob("*.parquet"))
    assert len(cached) == 1 and cached[0].with_suffix(".json").is_file()
    # Tamper with the cached file: a cache hit returns it as it is.
    pq.write_table(pq.read_table(cached[0]).slice(0, 5), cached[0])
    assert len(build_training_set(settings, start="2011-01-01")) == 5
    # Rebuilding the offline tables invalidates it.
    raw = load(synth_dir)
    write_feature_tables(settings, build(raw), raw.sources)
    pd.testing.assert_frame_equal(build_training_set(settings, start="2011-01-01"), first)


def test_bad_requests_are_clear_errors(settings: Settings) -> None:
    with pytest.raises(SalesForecastError, match="is after"):
        build_training_set(settings, start="2012-01-01", end="2011-01-01")
    with pytest.raises(SalesForecastError, match="has no weeks on or after 2030-01-01: no training set"):
        build_training_set(settings, start="2030-01-01")
    with pytest.raises(SalesForecastError, match="at least 1"):
        build_training_set(settings, sample_size=0)


def test_cli_writes_the_frame_where_asked(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "train.parquet"
    env = {"SALESFORECAST_WORKDIR": str(settings.workdir), "SALESFORECAST_PROFILE": "local"}
    result = CliRunner().invoke(
        app, ["features", "training-set", "--sample-size", "500", "--out", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert list(frame.columns[:5]) == ["store", "dept", "date", "weekly_sales", "is_observed"]
    assert set(STORE_FEATURES) | {"sales_lag_52", "week_sin", "holiday_markdown"} <= set(frame.columns)
    assert f"{len(frame):,} rows" in result.output

    bad = CliRunner().invoke(app, ["features", "training-set", "--start", "2012-13-40"], env=env)
    assert bad.exit_code == 2 and "is not a date" in bad.output
