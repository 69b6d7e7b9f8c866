"""The trained TFT inside the evaluation harness: scored like the baselines, and never fed the future."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import train_tiny_model

from salesforecast import pipeline
from salesforecast.config import Settings
from salesforecast.data.ingest import load
from salesforecast.evaluation.protocols import Panel as SalesPanel
from salesforecast.features.build import build
from salesforecast.featurestore.training_set import build_training_set
from salesforecast.model.forecaster import TFTForecaster, load_trained
from salesforecast.model.windows import PAST_REALS, SALES_REALS
from salesforecast.offline.store import write_feature_tables
from salesforecast.training.checkpoint import BEST_MODEL


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, synth_dir: Path) -> Settings:
    wd = tmp_path_factory.mktemp("tft_eval")
    settings = Settings(workdir=wd, data_dir=synth_dir)
    raw = load(synth_dir)
    write_feature_tables(settings, build(raw), raw.sources)
    frame_path = wd / "frame.parquet"
    build_training_set(settings).to_parquet(frame_path)
    train_tiny_model(wd, frame_path, horizon=8)
    return settings


def test_holdout_scores_the_tft_beside_the_baselines(settings: Settings) -> None:
    result = pipeline.evaluate(settings, "holdout")
    summary = result.result.summary()
    assert {"naive", "seasonal_naive", "svd_regression", "tft"} <= set(summary)
    tft = summary["tft"]
    assert tft["pooled"]["wmae"] > 0 and set(tft["per_horizon"]) == {str(h) for h in range(1, 9)}
    assert tft["pooled"]["coverage_p10_p90"] is not None
    # Same rows for every model.
    rows = {name: entry["rows"] for name, entry in summary.items()}
    assert len(set(rows.values())) == 1, rows
    metrics = json.loads((settings.reports_dir / "metrics.json").read_text())
    tft_facts = metrics["protocols"]["holdout"]["models"]["tft"]
    importance = tft_facts["interpretation"]["variable_importance"]
    assert set(importance) == {"static", "encoder", "decoder"}
    assert sum(importance["encoder"].values()) == pytest.approx(1.0, abs=1e-3)
    assert len(tft_facts["interpretation"]["attention"]) == 12
    assert (settings.reports_dir / "variable_importance_holdout_tft.png").is_file()
    assert (settings.reports_dir / "attention_holdout_tft.png").is_file()


def test_changing_data_from_the_origin_on_leaves_the_forecast_unchanged(settings: Settings) -> None:
    origin = pd.Timestamp("2012-05-04")
    model = load_trained(settings)
    assert model is not None
    history = SalesPanel.from_frame(load(settings.data_dir).train).until(origin)  # type: ignore[arg-type]
    before = model.forecast(history, origin, 8)

    tampered = TFTForecaster(settings, settings.artifacts_dir / BEST_MODEL)
    frame, _ = tampered._inputs()
    dates = pd.to_datetime(frame["date"]).dt.tz_localize(None)
    late = (dates >= origin).to_numpy()
    # Everything not known in advance: sales, their lags and statistics, the store's economy and markdowns.
    unknown = ["weekly_sales", *SALES_REALS, *PAST_REALS]
    unknown = [c for c in unknown if c in frame.columns and pd.api.types.is_float_dtype(frame[c])]
    assert {"weekly_sales", "sales_lag_1", "temperature", "markdown1"} <= set(unknown)
    frame.loc[late, unknown] = frame.loc[late, unknown] * 3 + 1000
    after = tampered.forecast(history, origin, 8)
    pd.testing.assert_frame_equal(before, after)

    # The tampering does reach forecasts from later origins, so this test can fail.
    later = origin + pd.Timedelta(weeks=12)
    changed = tampered.forecast(history, later, 8)["p50"].to_numpy()
    assert not np.allclose(changed, model.forecast(history, later, 8)["p50"].to_numpy())


def test_a_backtest_rerun_reuses_its_fold_models_unless_the_data_changed(settings, monkeypatch) -> None:
    from salesforecast.training import launch as launcher

    launches = []
    real_launch = launcher.launch

    def counting(config, workers=1):
        launches.append(config.cutoff)
        return real_launch(config, 1)

    monkeypatch.setattr(launcher, "launch", counting)
    history = SalesPanel.from_frame(load(settings.data_dir).train).until(pd.Timestamp("2011-09-02"))
    first = TFTForecaster(settings, settings.artifacts_dir / BEST_MODEL)
    first.fit(history)
    assert launches == ["2011-09-02"] and first.trained_until == pd.Timestamp("2011-08-26")

    again = TFTForecaster(settings, settings.artifacts_dir / BEST_MODEL)
    again.fit(history)
    assert launches == ["2011-09-02"] and again.path == first.path  # the same recipe: reused

    changed = TFTForecaster(settings, settings.artifacts_dir / BEST_MODEL)
    frame, _ = changed._inputs()
    frame.loc[frame.index[:10], "weekly_sales"] += 1.0
    changed.fit(history)
    assert launches == ["2011-09-02", "2011-09-02"]  # other data: trained again


def test_evaluation_precision_is_the_trained_one_unless_fp32_is_asked(settings: Settings) -> None:
    from salesforecast.errors import SalesForecastError

    exact = load_trained(settings.model_copy(update={"tft_precision": "fp32"}))
    assert exact is not None and exact.precision == "fp32" and exact.dtype is None
    assert exact.describe()["inference_precision"] == "float32"
    with pytest.raises(SalesForecastError, match="expected auto or fp32"):
        TFTForecaster(settings, settings.artifacts_dir / BEST_MODEL, precision="fp16")
