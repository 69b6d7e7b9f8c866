"""The synthetic generator: deterministic, Kaggle-shaped, with the seasonal patterns it promises."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from salesforecast.cli import app
from salesforecast.data import synth
from salesforecast.data.ingest import load
from salesforecast.data.schema import SCHEMAS


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    synth.write(a, synth.generate(stores=2, depts=3, weeks=60, seed=1))
    synth.write(b, synth.generate(stores=2, depts=3, weeks=60, seed=1))
    synth.write(c, synth.generate(stores=2, depts=3, weeks=60, seed=2))
    for name in ("train", "features", "stores", "test"):
        assert (a / f"{name}.csv").read_bytes() == (b / f"{name}.csv").read_bytes()
    assert (a / "train.csv").read_bytes() != (c / "train.csv").read_bytes()


def test_headers_are_exactly_the_kaggle_schema(synth_dir: Path) -> None:
    for name, schema in SCHEMAS.items():
        header = pd.read_csv(synth_dir / f"{name}.csv", nrows=0).columns.tolist()
        assert header == list(schema), name


def test_patterns(synth_dir: Path) -> None:
    raw = load(synth_dir)
    train = raw.train
    weekly = train.groupby("date")["weekly_sales"].sum()
    thanksgiving = weekly[weekly.index.isin(pd.to_datetime(["2010-11-26", "2011-11-25"]))]
    assert (thanksgiving > 1.3 * weekly.median()).all()
    md = raw.features[[f"markdown{i}" for i in range(1, 6)]]
    early = raw.features["date"] < "2011-11-11"
    assert md[early].isna().all().all() and md[~early].notna().mean().mean() > 0.8
    assert (train["weekly_sales"] < 0).any()
    per_series = train.groupby(["store", "dept"]).size()
    assert (per_series < 143).any()  # some series have gaps or start late
    by_store = train.groupby("store")["weekly_sales"].mean()
    size = raw.stores.set_index("store")["size"]
    assert by_store.corr(size.loc[by_store.index]) > 0.8  # bigger stores sell more


def test_cli_synth_then_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "demo"
    result = runner.invoke(app, ["data", "synth", "--out", str(out), "--stores", "3", "--depts", "4"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["data", "validate", "--data-dir", str(out)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "12" in result.output  # 3 stores x 4 departments
