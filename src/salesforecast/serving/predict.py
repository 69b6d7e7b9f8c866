"""The one prediction path: series keys in, P10/P50/P90 for the next weeks out.

`Forecaster` loads the trained model once per process and opens the online store once; each call
makes one online read (`serving.online`), lays the requested series' inputs out in numpy with the
offline feature definitions (`serving.inputs`), cuts the windows with `model.windows.gather` (the
code of training and evaluation) and runs the TFT (`serving.runtime`: traced, in small chunks).
The CLI, the API and batch scoring all call `Forecaster.forecast_frame` / `Forecaster.forecast`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from salesforecast.config import Settings
from salesforecast.errors import ModelNotFoundError, SalesForecastError
from salesforecast.featurestore.config import StoreOptions
from salesforecast.serving.inputs import InputBuilder
from salesforecast.serving.online import WEEK, OnlineReader, OnlineRows
from salesforecast.serving.runtime import ModelRunner
from salesforecast.serving.schemas import ForecastPoint, SeriesForecast, SeriesKey

QUANTILE_COLUMNS = ("p10", "p50", "p90")


def model_path(settings: Settings) -> Path:
    from salesforecast.training.checkpoint import BEST_MODEL

    return settings.artifacts_dir / BEST_MODEL


class Forecaster:
    """Model and online store, loaded once; implements the API's `Predictor` protocol."""

    def __init__(
        self, settings: Settings, options: StoreOptions | None = None, path: Path | None = None
    ) -> None:
        from salesforecast.training.checkpoint import load_model

        path = path or model_path(settings)
        if not path.is_file():
            raise ModelNotFoundError(
                f"no trained model at {path}: train one with `salesforecast train --workdir "
                f"{settings.workdir}` (or point --workdir at a work directory that has one)"
            )
        self.model, self.prep, bundle = load_model(path)
        self.model.eval()
        config = self.model.config
        self.encoder_length, self.max_horizon = config.encoder_length, config.horizon
        if set(config.quantiles) != {0.1, 0.5, 0.9}:
            raise SalesForecastError(f"{path}: model quantiles {config.quantiles}, not P10/P50/P90")
        self.quantile_index = [list(config.quantiles).index(q) for q in (0.1, 0.5, 0.9)]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        self.model_version = f"tft-{bundle.get('trained_until', 'unknown')}-{digest}"
        self.builder = InputBuilder(self.prep, self.encoder_length, self.max_horizon)
        self.runner = ModelRunner(self.model)
        self.reader = OnlineReader(settings, options)

    def check_store(self) -> None:
        self.reader.check()

    def inputs(self, rows: OnlineRows) -> tuple[dict[str, torch.Tensor], np.ndarray]:
        """Model inputs for the read series, in read order, and each one's origin (first forecast week)."""
        return self.builder.batch(rows)

    def predict_array(self, keys: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """[n, H, 3] P10/P50/P90 in sales units (sorted) and [n] origins, for distinct keys."""
        batch, origin = self.inputs(self.reader.read(keys))
        with torch.inference_mode():
            pred = self.runner(batch) * batch["scale"][:, None, None]
        return pred.numpy().astype("float64")[:, :, self.quantile_index], origin

    def _check_horizon(self, horizon: int) -> None:
        if not 1 <= horizon <= self.max_horizon:
            raise SalesForecastError(f"horizon {horizon}: expected 1..{self.max_horizon} (the model's)")

    def forecast_frame(self, keys: list[tuple[int, int]], horizon: int | None = None) -> pd.DataFrame:
        """One row per series and week: keys, h, date, p10/p50/p90, feature_timestamp, model_version."""
        horizon = horizon or self.max_horizon
        self._check_horizon(horizon)
        distinct = list(dict.fromkeys((int(s), int(d)) for s, d in keys))
        pred, origin = self.predict_array(distinct)
        n = len(distinct)
        h = np.arange(horizon)
        return pd.DataFrame(
            {
                "store": np.repeat([k[0] for k in distinct], horizon).astype("int32"),
                "dept": np.repeat([k[1] for k in distinct], horizon).astype("int32"),
                "h": np.tile(h + 1, n).astype("int32"),
                "date": (np.repeat(origin, horizon) + np.tile(h, n) * WEEK).astype("datetime64[ns]"),
                **{name: pred[:, :horizon, j].reshape(-1) for j, name in enumerate(QUANTILE_COLUMNS)},
                "feature_timestamp": np.repeat(origin - WEEK, horizon).astype("datetime64[ns]"),
                "model_version": self.model_version,
            }
        )

    def forecast(self, keys: list[SeriesKey], horizon: int) -> list[SeriesForecast]:
        """The API's call: one result per requested key, in request order (no frame in between)."""
        self._check_horizon(horizon)
        distinct = list(dict.fromkeys((k.store, k.dept) for k in keys))
        pred, origin = self.predict_array(distinct)
        steps = np.arange(horizon) * WEEK
        by_key = {}
        for i, (store, dept) in enumerate(distinct):
            days = (origin[i] + steps).astype("datetime64[D]").tolist()
            stamp = (origin[i] - WEEK).astype("datetime64[D]").item()
            by_key[(store, dept)] = SeriesForecast(
                store=store,
                dept=dept,
                forecasts=[
                    ForecastPoint(date=day, h=j + 1, p10=q[0], p50=q[1], p90=q[2])
                    for j, (day, q) in enumerate(zip(days, pred[i, :horizon].tolist(), strict=True))
                ],
                model_version=self.model_version,
                feature_timestamp=dt.datetime.combine(stamp, dt.time(), tzinfo=dt.UTC),
            )
        return [by_key[(k.store, k.dept)] for k in keys]
