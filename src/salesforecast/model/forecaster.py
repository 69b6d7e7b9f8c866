"""The trained TFT as one more model of the evaluation harness (`evaluation/forecaster.py`).

Forecasts come from `model.predict.forecast_origin`, whose windows read only encoder weeks
before the origin and the known inputs of the horizon's weeks; `tests/test_tft_evaluation.py`
checks that changing the data from the origin on leaves the forecasts unchanged. A backtest
retrains the same recipe (the saved training config) with each fold's start as the cut-off.

Inference runs on every core the process may use, in batches of 512 and under the autocast
dtype the model was trained with (bf16 on CPUs that run it natively; fp32 otherwise, or with
`precision="fp32"`): together about 3x faster than one thread in fp32 on the 2-core machine
(docs/evaluation.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from salesforecast.config import Settings
from salesforecast.errors import SalesForecastError
from salesforecast.evaluation.protocols import Panel as SalesPanel
from salesforecast.model.predict import forecast_origin
from salesforecast.model.windows import Panel, build_panel, load_training_frame
from salesforecast.offline.files import atomic_write
from salesforecast.offline.store import read_feature_table
from salesforecast.training.checkpoint import BEST_MODEL, SUMMARY, load_model

BACKTEST_DIR = "backtest"
INFERENCE_BATCH = 512


@contextlib.contextmanager
def all_cores() -> Iterator[None]:
    """Use every core for inference: a training launch in this process may have set torch to one."""
    before = torch.get_num_threads()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TFTForecaster:
    name = "tft"
    has_quantiles = True
    refit_every_origin = False

    def __init__(self, settings: Settings, path: Path, workers: int = 2, precision: str = "auto") -> None:
        if precision not in {"auto", "fp32"}:
            raise SalesForecastError(f"TFT precision {precision!r}: expected auto or fp32")
        self.settings = settings
        self.workers = workers
        self.precision = precision
        self._frame: pd.DataFrame | None = None
        self._frame_path: Path | None = None  # the frame's content-named Parquet, for retraining
        self._stores: pd.DataFrame | None = None
        self._load(path)

    def _load(self, path: Path) -> None:
        self.path = path
        self.model, self.prep, self.bundle = load_model(path)
        self.trained_until = pd.Timestamp(self.bundle["trained_until"])
        self._panel: Panel | None = None
        from salesforecast.training.train import autocast_dtype

        trained_amp = bool(self.bundle.get("train_config", {}).get("amp", False))
        self.dtype = autocast_dtype(torch.device("cpu"), trained_amp and self.precision == "auto")

    def _inputs(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        if self._frame is None or self._stores is None:
            self._frame = load_training_frame(self.settings)
            self._stores = read_feature_table(self.settings, "store_features")
        return self._frame, self._stores

    def panel(self) -> Panel:
        if self._panel is None:
            frame, stores = self._inputs()
            self._panel = build_panel(frame, self.prep, store_features=stores)
        return self._panel

    def fit(self, history: SalesPanel) -> None:
        """Retrain with every week before the first unseen one (a backtest fold's start)."""
        from salesforecast.training.launch import launch
        from salesforecast.training.train import TrainConfig

        cutoff = history.dates[-1] + pd.Timedelta(days=7)
        if self.bundle.get("cutoff") == str(cutoff.date()):
            return  # the loaded model was trained with exactly this cut-off
        folder = self.settings.workdir / BACKTEST_DIR / f"cutoff-{cutoff.date()}"
        frame_path = self._frame_file()
        recipe = {
            k: v
            for k, v in self.bundle.get("train_config", {}).items()
            if k in {f.name for f in dataclasses.fields(TrainConfig)}
        }
        config = TrainConfig(
            **{
                **recipe,
                "profile": self.settings.profile.value,
                "workdir": str(folder),
                "frame_path": str(frame_path),
                "cutoff": str(cutoff.date()),
                "resume": False,
            }
        )
        trained = folder / "artifacts" / BEST_MODEL
        if not _same_recipe(trained, config):  # a re-run reuses the fold models it already has
            launch(config, self.workers)
        self._load(trained)

    def _frame_file(self) -> Path:
        """The training frame as Parquet, named by its content: new data means new fold models."""
        if self._frame_path is None:
            frame, _ = self._inputs()
            digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
            path = self.settings.workdir / BACKTEST_DIR / f"frame-{digest.hexdigest()[:16]}.parquet"
            if not path.is_file():
                atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
            self._frame_path = path
        return self._frame_path

    def forecast(self, history: SalesPanel, origin: pd.Timestamp, horizon: int) -> pd.DataFrame:
        if horizon > self.model.config.horizon:
            raise SalesForecastError(
                f"the TFT forecasts {self.model.config.horizon} weeks; the protocol asks for {horizon}: "
                f"train with --horizon {horizon}"
            )
        with all_cores():
            out = forecast_origin(
                self.model, self.panel(), origin, batch_size=INFERENCE_BATCH, precision=self.dtype
            )
        return out[out["h"] <= horizon].reset_index(drop=True)

    def describe(self) -> dict[str, Any]:
        members = self.bundle.get("members")
        method = f"ensemble of {members} TFTs (mean forecast)" if members else "Temporal Fusion Transformer"
        return {
            "name": self.name,
            "method": method,
            "path": str(self.path),
            "trained_until": str(self.trained_until.date()),
            "epoch": self.bundle.get("epoch"),
            "val_loss": self.bundle.get("val_loss"),
            "inference_precision": str(self.dtype).replace("torch.", "") if self.dtype else "float32",
            "config": self.model.config.to_dict(),
        }

    def interpretation(self) -> dict[str, Any]:
        from salesforecast.model.interpret import interpretation

        return interpretation(self.model, self.panel(), self.trained_until)


def _same_recipe(path: Path, config: Any) -> bool:
    """Whether `path` holds the model of a finished training run with exactly `config`.

    The run's summary is written last, so a run killed after its first best epoch does not count.
    """
    summary = path.with_name(SUMMARY)
    if not (path.is_file() and summary.is_file()) or summary.stat().st_mtime < path.stat().st_mtime:
        return False
    try:
        saved = json.loads(summary.read_text()).get("config", {})
    except (OSError, ValueError):
        return False
    wanted = dataclasses.asdict(config)
    return all(saved.get(k) == v for k, v in wanted.items() if k != "resume")


def load_trained(settings: Settings) -> TFTForecaster | None:
    path = settings.artifacts_dir / BEST_MODEL
    return TFTForecaster(settings, path, precision=settings.tft_precision) if path.is_file() else None
