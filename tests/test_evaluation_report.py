"""The evaluation artefacts are written and parse: forecasts Parquet, metrics.json, report.md,
PNG charts (including a trained model's interpretation charts), and the two CLI commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from salesforecast.cli import app
from salesforecast.data.ingest import load
from salesforecast.evaluation import baselines, harness, protocols, report
from salesforecast.evaluation.protocols import Panel

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Banded:
    """A stand-in trained model with quantiles and interpretation, as the TFT will provide."""

    name = "banded"
    has_quantiles = True
    refit_every_origin = False

    def __init__(self) -> None:
        self.trained_until: pd.Timestamp | None = None

    def fit(self, history: Panel) -> None:
        self.trained_until = history.dates[-1]

    def forecast(self, history: Panel, origin: pd.Timestamp, horizon: int) -> pd.DataFrame:
        out = baselines.SeasonalNaive().forecast(history, origin, horizon)
        return out.assign(p10=out["p50"] * 0.9 - 100, p90=out["p50"] * 1.1 + 100)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "method": "seasonal naive with a +-10% band", "checkpoint": "none"}

    def interpretation(self) -> dict[str, Any]:
        return {
            "variable_importance": {"encoder": {"sales": 0.7, "markdown": 0.3}, "decoder": {"holiday": 1.0}},
            "attention": list(np.linspace(0.01, 0.05, 52)),
        }


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


@pytest.fixture(scope="module")
def written(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = load(synth_dir)
    panel = Panel.from_frame(raw.train)
    reports_dir = tmp_path_factory.mktemp("reports")
    for plan, every in ((protocols.holdout(horizon=3), 13), (protocols.backtest(), 1)):
        models = [*baselines.default_baselines(), Banded()]
        result = harness.evaluate(panel, plan, models, retrain_every=every)
        result.notes.append("test note")
        report.write(result, reports_dir, report.data_version(raw.sources, raw.train))
    return reports_dir


def test_forecast_files_hold_one_row_per_model_series_origin_and_step(written: Path, synth_dir: Path) -> None:
    panel = Panel.from_frame(load(synth_dir).train)
    for name, plan in (("holdout", protocols.holdout(horizon=3)), ("backtest", protocols.backtest())):
        frame = pd.read_parquet(written / f"forecasts_{name}.parquet")
        assert {"model", "store", "dept", "origin_date", "target_date", "h", "p50", "p10", "p90"} <= set(
            frame
        )
        assert len(frame) == 5 * len(plan.targets(panel))
        assert not frame.duplicated(["model", "store", "dept", "origin_date", "h"]).any()
        assert (
            frame["target_date"] == frame["origin_date"] + pd.to_timedelta(7 * (frame["h"] - 1), unit="D")
        ).all()
        naive = frame[frame["model"] == "naive"]
        assert naive["p10"].isna().all() and frame.loc[frame["model"] == "banded", "p10"].notna().all()


def test_metrics_json_keeps_both_protocols_and_rescoring_the_parquet_agrees(written: Path) -> None:
    payload = json.loads((written / "metrics.json").read_text())
    assert set(payload["protocols"]) == {"holdout", "backtest"}
    holdout = payload["protocols"]["holdout"]
    assert holdout["test_period"] == {"start": "2012-02-03", "end": "2012-10-26", "weeks": 39}
    assert holdout["horizon"] == 3 and holdout["retrain_every"] == 13
    assert "1,000" in holdout["mape_note"]
    assert set(holdout["models"]) == {
        "naive",
        "seasonal_naive",
        "seasonal_regression",
        "svd_regression",
        "banded",
    }
    banded = holdout["models"]["banded"]
    assert set(banded["per_horizon"]) == {"1", "2", "3"} and banded["fits"] == 3  # origins 1, 14, 27
    assert banded["pooled"]["coverage_p10_p90"] is not None
    assert holdout["models"]["naive"]["pooled"]["coverage_p10_p90"] is None
    # anyone can re-score the forecasts file with their own code
    frame = pd.read_parquet(written / "forecasts_holdout.parquet")
    rows = frame[(frame["model"] == "seasonal_naive") & (frame["h"] == 2)]
    weights = np.where(rows["is_holiday"], 5, 1)
    own = (weights * (rows["actual"] - rows["p50"]).abs()).sum() / weights.sum()
    assert holdout["models"]["seasonal_naive"]["per_horizon"]["2"]["wmae"] == pytest.approx(own)
    backtest = payload["protocols"]["backtest"]
    assert len(backtest["models"]["naive"]["per_fold"]) == 10
    mean = np.mean([f["wmae"] for f in backtest["models"]["naive"]["per_fold"].values()])
    assert backtest["models"]["naive"]["score"] == pytest.approx(mean)


def test_report_markdown_and_charts(written: Path) -> None:
    text = (written / "report.md").read_text()
    for expected in (
        "## Holdout",
        "## Backtest",
        "`svd_regression`",
        "vs `seasonal_naive`",
        "\\|actual\\| ≥ $1,000",
    ):
        assert expected in text
    assert "test note" in text
    assert "**Synthetic data.**" in text  # the synth generator marks its folder
    payload = json.loads((written / "metrics.json").read_text())
    assert all(p["data"]["synthetic"] for p in payload["protocols"].values())
    for name in ("holdout", "backtest"):
        for chart in (
            f"wmae_by_horizon_{name}.png",
            f"forecast_{name}_largest.png",
            f"forecast_{name}_typical.png",
            f"variable_importance_{name}_banded.png",
            f"attention_{name}_banded.png",
        ):
            assert is_png(written / chart), chart
            assert f"]({chart})" in text


def test_pick_series_finds_the_largest_and_typical_ones() -> None:
    dates = pd.date_range("2012-02-03", periods=4, freq="7D")
    rows = [(s, 1, d, float(s * 100)) for s in range(1, 6) for d in dates]
    frame = pd.DataFrame(rows, columns=["store", "dept", "target_date", "actual"]).assign(model="m")
    largest, typical = report.pick_series(frame)
    assert largest == (5, 1)
    assert typical == [(2, 1), (3, 1), (4, 1)]


def test_cli_evaluate_and_report(synth_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    args = [
        "evaluate",
        "--protocol",
        "holdout",
        "--horizon",
        "2",
        "--data-dir",
        str(synth_dir),
        "--workdir",
        str(tmp_path),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "no trained model found" in result.output
    assert "svd_regression" in result.output
    assert (
        json.loads((tmp_path / "reports" / "metrics.json").read_text())["protocols"]["holdout"]["horizon"]
        == 2
    )
    shown = runner.invoke(app, ["report", "--open", "--workdir", str(tmp_path)], env={"DISPLAY": ""})
    assert shown.exit_code == 0, shown.output
    assert "report.md" in shown.output and "forecasts_holdout.parquet" in shown.output
    assert "no display" in shown.output


def test_cli_errors_are_one_line(synth_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["report", "--workdir", str(tmp_path)])
    assert missing.exit_code == 2 and "run `salesforecast evaluate` first" in missing.output
    bad = runner.invoke(
        app, ["evaluate", "--protocol", "cv", "--data-dir", str(synth_dir), "--workdir", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "unknown protocol" in bad.output
    short = ["evaluate", "--protocol", "backtest", "--horizon", "4", "--data-dir", str(synth_dir)]
    assert runner.invoke(app, short).exit_code == 2


def test_only_generated_files_are_marked_synthetic(synth_dir: Path, tmp_path: Path) -> None:
    raw = load(synth_dir)
    assert report.data_version(raw.sources, raw.train)["synthetic"]
    copy = tmp_path / "train.csv"
    copy.write_bytes((synth_dir / "train.csv").read_bytes())
    assert not report.data_version({"train": str(copy)}, raw.train)["synthetic"]
