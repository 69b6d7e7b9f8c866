"""The one prediction path: series keys in, P10/P50/P90 for the next weeks out.

`Forecaster` loads the trained model once per process and opens the online store once; each call
makes one online read (`serving.online`), rebuilds the training frame's rows for the requested
series, lays them out with `model.windows.build_panel`, cuts the windows with `gather` (the same
code as training and evaluation) and runs the TFT under `torch.inference_mode()`. The CLI, the API
and batch scoring all call `Forecaster.forecast_frame` / `Forecaster.forecast`.
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
from salesforecast.model.windows import build_panel, gather
from salesforecast.serving.online import OnlineReader, OnlineRows, rebuild_frame
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
        self.reader = OnlineReader(settings, options)

    def check_store(self) -> None:
        self.reader.check()

    def inputs(self, rows: OnlineRows) -> tuple[dict[str, torch.Tensor], list[int], np.ndarray]:
        """Model inputs for the read series: (batch, panel row of each key, origin of each key)."""
        L, H = self.encoder_length, self.max_horizon
        frame, store_frame, origin = rebuild_frame(rows, L, H)
        panel = build_panel(frame, self.prep, store_features=store_frame)
        index = pd.MultiIndex.from_frame(panel.keys).get_indexer(pd.MultiIndex.from_tuples(rows.keys))
        if (index < 0).any():  # a bug, not a user error: every read series must have a panel row
            raise RuntimeError(f"series without a panel row: {np.asarray(rows.keys)[index < 0].tolist()}")
        series = torch.as_tensor(index, dtype=torch.long)
        start = torch.as_tensor([panel.week(pd.Timestamp(o)) for o in origin], dtype=torch.long)
        return gather(panel, series, start, L, H), list(index), origin

    def predict_array(self, keys: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """[n, H, 3] P10/P50/P90 in sales units (sorted) and [n] origins, for distinct keys."""
        rows = self.reader.read(keys)
        batch, _, origin = self.inputs(rows)
        with torch.inference_mode():
            pred = self.model.predict(batch) * batch["scale"][:, None, None]
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
        out = pd.DataFrame(
            {
                "store": np.repeat([k[0] for k in distinct], horizon).astype("int32"),
                "dept": np.repeat([k[1] for k in distinct], horizon).astype("int32"),
                "h": np.tile(h + 1, n).astype("int32"),
                "date": (np.repeat(origin, horizon) + np.tile(h, n) * np.timedelta64(7, "D")).astype(
                    "datetime64[ns]"
                ),
            }
        )
        for j, name in enumerate(QUANTILE_COLUMNS):
            out[name] = pred[:, :horizon, j].reshape(-1)
        out["feature_timestamp"] = np.repeat(origin - np.timedelta64(7, "D"), horizon).astype(
            "datetime64[ns]"
        )
        out["model_version"] = self.model_version
        return out

    def forecast(self, keys: list[SeriesKey], horizon: int) -> list[SeriesForecast]:
        """The API's call: one result per requested key, in request order."""
        frame = self.forecast_frame([(k.store, k.dept) for k in keys], horizon)
        by_key = {}
        values = frame[["h", *QUANTILE_COLUMNS]].to_numpy()
        dates = frame["date"].dt.date.tolist()
        stamps = frame["feature_timestamp"].tolist()
        for i in range(0, len(frame), horizon):
            store, dept = int(frame["store"].iat[i]), int(frame["dept"].iat[i])
            by_key[(store, dept)] = SeriesForecast(
                store=store,
                dept=dept,
                forecasts=[
                    ForecastPoint(date=dates[i + j], h=int(values[i + j, 0]), p10=v[1], p50=v[2], p90=v[3])
                    for j, v in enumerate(values[i : i + horizon])
                ],
                model_version=self.model_version,
                feature_timestamp=dt.datetime.combine(stamps[i].date(), dt.time(), tzinfo=dt.UTC),
            )
        return [by_key[(k.store, k.dept)] for k in keys]
