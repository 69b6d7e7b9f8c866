"""The pipeline's stages as plain functions: what `salesforecast run`, the CLI and the notebooks call.

Each function takes the shared Settings, does one stage and returns what it produced, so a
notebook can show it and the stage runner can record it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salesforecast.config import Settings
from salesforecast.errors import SalesForecastError

QUICK_SAMPLE_ROWS = 100_000  # the seed's quickstart
DEMO_SHAPE = {"stores": 10, "depts": 20, "weeks": 143}


def require_data_dir(settings: Settings) -> Path:
    if settings.data_dir is None:
        raise SalesForecastError(
            "no data directory: pass --data-dir DIR (or set SALESFORECAST_DATA_DIR); "
            "`salesforecast data synth --out DIR` writes a synthetic one"
        )
    from salesforecast.data.ingest import data_directory

    return data_directory(settings.data_dir)


def demo_data(settings: Settings) -> Path:
    """Synthetic data in the Kaggle schema under the work directory (written once)."""
    from salesforecast.data import synth

    out = settings.workdir / "demo-data"
    if not (out / "train.csv").is_file():
        synth.write(out, synth.generate(seed=settings.seed, **DEMO_SHAPE))
    return out


def validate(settings: Settings) -> dict[str, Any]:
    from salesforecast.data.ingest import load, summarize

    return summarize(load(require_data_dir(settings)))


def build_features(settings: Settings) -> dict[str, Any]:
    from salesforecast.data.ingest import load
    from salesforecast.features.build import build
    from salesforecast.offline.store import write_feature_tables

    raw = load(require_data_dir(settings))
    return write_feature_tables(settings, build(raw), raw.sources)


def apply_feature_store(settings: Settings, options: Any = None) -> dict[str, Any]:
    from salesforecast.featurestore.store import apply, open_repo

    return apply(open_repo(settings, options))


def training_set(settings: Settings, sample_size: int | None = None, options: Any = None) -> Any:
    """The point-in-time training frame of the feature service (cached, so training reuses it)."""
    from salesforecast.featurestore.training_set import build_training_set

    return build_training_set(settings, sample_size=sample_size, options=options)


def train(settings: Settings, workers: int = 2, **overrides: Any) -> dict[str, Any]:
    """DDP training through torchrun; returns the training summary rank 0 wrote."""
    import json

    from salesforecast.training.checkpoint import SUMMARY
    from salesforecast.training.launch import launch
    from salesforecast.training.train import TrainConfig

    config = TrainConfig(profile=settings.profile.value, workdir=str(settings.workdir), **overrides)
    launch(config, workers)
    summary_path = settings.artifacts_dir / SUMMARY
    return json.loads(summary_path.read_text()) if summary_path.is_file() else {}


@dataclass
class EvaluationRun:
    result: Any  # evaluation.harness.Evaluation
    paths: list[Path]
    notes: list[str]
    seconds: float


def evaluate(
    settings: Settings,
    protocol: str = "holdout",
    horizon: int | None = None,
    retrain_every: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvaluationRun:
    """Score the baselines, and the trained TFT when there is one, on a protocol; write the report."""
    from salesforecast.data.ingest import load
    from salesforecast.evaluation import baselines, harness, protocols, report

    started = time.perf_counter()
    plan = protocols.make(protocol, horizon if horizon or protocol != "holdout" else settings.horizon)
    raw = load(require_data_dir(settings))
    trained, notes = harness.trained_forecasters(settings)
    result = harness.evaluate(
        protocols.Panel.from_frame(raw.train),
        plan,
        [*baselines.default_baselines(), *trained],
        retrain_every if retrain_every or plan.name != "backtest" else 1,
        progress=progress,
    )
    data = report.data_version(raw.sources, raw.train)
    if data["synthetic"]:
        notes.append("synthetic data (salesforecast data synth): these figures say nothing about real sales")
    result.notes.extend(notes)
    paths = report.write(result, settings.reports_dir, data)
    return EvaluationRun(result, paths, notes, time.perf_counter() - started)


def online_files(settings: Settings, options: Any = None) -> list[Path]:
    """The online store's file, where it is one (SQLite): deleting it makes `run` materialize again.

    A server store (PostgreSQL, Redis) that lost its tables is caught at read time instead: the
    API answers 503 naming `salesforecast materialize --full`.
    """
    from salesforecast.featurestore.config import OnlineStoreKind, StoreOptions, repo_dir

    options = options or StoreOptions()
    if options.online_for(settings) is not OnlineStoreKind.sqlite:
        return []
    return [repo_dir(settings) / "data" / "online_store.db"]


def materialize(settings: Settings, options: Any = None) -> dict[str, Any]:
    from salesforecast.featurestore.materialize import materialize as feast_materialize

    return feast_materialize(settings, options=options)


def forecast_sample(settings: Settings, n: int = 3, options: Any = None) -> Any:
    """Forecasts for a few series through the online path: the same call the API makes."""
    from salesforecast.serving.batch import series_keys
    from salesforecast.serving.predict import Forecaster

    keys = series_keys(settings)[:n]
    return Forecaster(settings, options).forecast_frame(keys)


def stages(
    settings: Settings,
    *,
    workers: int = 2,
    quick: bool = False,
    epochs: int | None = None,
    options: Any = None,
    show: Callable[[str, Any], None] = lambda stage, value: None,
    track: bool = True,
) -> list[Any]:
    """The end-to-end pipeline as resumable stages (see `salesforecast.stages`).

    After training and evaluation, `salesforecast.tracking` logs the stage's files to MLflow
    (shown as `show("tracking", Tracked)`); tracking never fails a stage.
    """
    from salesforecast import tracking
    from salesforecast.stages import Stage, file_stamp

    data_dir = require_data_dir(settings)
    sample = QUICK_SAMPLE_ROWS if quick else None
    train_overrides: dict[str, Any] = {"sample_size": sample}
    if quick:
        train_overrides |= {"epochs": 3, "windows_per_epoch": 8192}
    if epochs is not None:
        train_overrides["epochs"] = epochs
    files = sorted(p for p in data_dir.iterdir() if p.is_file())
    common = {"profile": settings.profile.value, "workdir": str(settings.workdir.resolve())}

    def run_training_set() -> dict[str, Any]:
        frame = training_set(settings, sample, options)
        return {"rows": len(frame), "series": int(frame.groupby(["store", "dept"]).ngroups)}

    def run_train() -> dict[str, Any]:
        summary = train(settings, workers, **train_overrides)
        tracked = tracking.log_training(settings, track)
        show("tracking", tracked)
        return {**summary, "mlflow": tracked.run_id or tracked.skipped}

    def run_evaluate() -> dict[str, Any]:
        result = evaluate(settings, "holdout")
        show("evaluate", result)
        tracked = tracking.log_evaluation(settings, "holdout", track)
        show("tracking", tracked)
        return {
            "reports": [str(p) for p in result.paths],
            "notes": result.notes,
            "mlflow": tracked.run_id or tracked.skipped,
        }

    def run_forecast() -> dict[str, Any]:
        frame = forecast_sample(settings, options=options)
        show("forecast", frame)
        return {"series": int(frame.groupby(["store", "dept"]).ngroups), "weeks": int(frame["h"].max())}

    artifacts = settings.artifacts_dir
    return [
        Stage(
            "validate",
            "Validate the data",
            lambda: validate(settings),
            lambda: [file_stamp(f) for f in files],
        ),
        Stage(
            "features",
            "Build features and the offline store",
            lambda: build_features(settings),
            lambda: common,
        ),
        Stage(
            "feast",
            "Apply the Feast repository",
            lambda: apply_feature_store(settings, options),
            lambda: common,
        ),
        Stage("training_set", "Point-in-time training set", run_training_set, lambda: {"sample": sample}),
        Stage(
            "train",
            f"Train the TFT with DDP ({workers} worker{'s' if workers > 1 else ''})",
            run_train,
            lambda: {"workers": workers, **train_overrides},
            lambda: [artifacts / "best_model.pt"],
        ),
        Stage(
            "evaluate",
            "Evaluate on the holdout (last 39 weeks)",
            run_evaluate,
            # The model's stamp too: a model trained outside `run` (say `train --ensemble 3`) is
            # evaluated again, and everything after it runs again.
            lambda: {
                "protocol": "holdout",
                "tft_precision": settings.tft_precision,
                "model": file_stamp(model) if (model := artifacts / "best_model.pt").is_file() else None,
            },
            lambda: [settings.reports_dir / "metrics.json"],
        ),
        Stage(
            "materialize",
            "Materialize the online store",
            lambda: materialize(settings, options),
            outputs=lambda: online_files(settings, options),
        ),
        Stage("forecast", "Forecast through the online path", run_forecast),
    ]
