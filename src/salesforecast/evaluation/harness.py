"""Run forecasters through a protocol and score them on the same rows with the same code.

The harness alone cuts the data at each origin (`Panel.until`), schedules retraining, checks
each forecast against the interface and joins it onto the protocol's target rows. A target row
a model did not forecast (typically a series with no history yet) is scored as a forecast of 0,
the competition's convention, and counted as `imputed_rows`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from salesforecast.errors import SalesForecastError
from salesforecast.evaluation import metrics
from salesforecast.evaluation.forecaster import Forecaster, validate_forecast
from salesforecast.evaluation.protocols import WEEK, Panel, Protocol

TRAINED_MODEL_MODULE = "salesforecast.model.forecaster"  # exposes load_trained(settings) -> Forecaster | None
JOIN = ["origin_date", "h", "store", "dept"]


@dataclass
class Evaluation:
    protocol: Protocol
    forecasts: pd.DataFrame  # one row per model and scored row, with actual, p50[, p10, p90], imputed
    models: dict[str, dict[str, Any]]  # per model: description, fits, seconds, imputed rows, interpretation
    retrain_every: int | None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per model: pooled, per-horizon and (backtest) per-fold metrics and the headline score."""
        out: dict[str, dict[str, Any]] = {}
        for name, rows in self.forecasts.groupby("model", sort=False):
            pooled = metrics.as_dict(metrics.score_frame(rows))["0"]
            entry: dict[str, Any] = {
                "pooled": pooled,
                "per_horizon": metrics.as_dict(metrics.score_frame(rows, by=["h"])),
            }
            if self.protocol.name == "backtest":
                entry["per_fold"] = metrics.as_dict(metrics.score_frame(rows, by=["fold"]))
                entry["wmae_mean_of_folds"] = metrics.mean_of_folds(rows)
            entry["score"] = entry.get("wmae_mean_of_folds", pooled["wmae"])
            out[str(name)] = self.models[str(name)] | entry
        return out


def _retrain_due(index: int, every: int | None) -> bool:
    return index % every == 0 if every else False


def _check_trained_until(model: Forecaster, origin: pd.Timestamp) -> None:
    until = getattr(model, "trained_until", None)
    if until is not None and pd.Timestamp(until) > origin - WEEK:
        raise SalesForecastError(
            f"model {model.name!r} was trained on data up to {pd.Timestamp(until).date()}, on or after "
            f"the forecast origin {origin.date()}: that would leak the test period into training"
        )


def run_model(
    model: Forecaster,
    panel: Panel,
    protocol: Protocol,
    retrain_every: int | None,
    progress: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """All of one model's forecasts over the protocol's windows, validated, and its run facts."""
    started = time.perf_counter()
    fits, parts = 0, []
    for i, window in enumerate(protocol.windows):
        visible = panel.until(window.origin)
        if model.refit_every_origin or _retrain_due(i, retrain_every):
            model.fit(visible)
            fits += 1
        elif fits == 0 and getattr(model, "trained_until", None) is None:
            raise SalesForecastError(
                f"model {model.name!r} is neither retrained (--retrain-every) nor declares trained_until"
            )
        _check_trained_until(model, window.origin)
        out = model.forecast(visible, window.origin, window.horizon)
        out = validate_forecast(out, model, window.origin, window.horizon)
        parts.append(out.assign(origin_date=window.origin))
    seconds = time.perf_counter() - started
    if progress:
        progress(f"{model.name}: {len(protocol.windows)} origins, {fits} fits, {seconds:.1f} s")
    facts: dict[str, Any] = {
        "description": model.describe(),
        "fits": fits,
        "seconds": round(seconds, 2),
    }
    interpret = getattr(model, "interpretation", None)
    if callable(interpret):
        facts["interpretation"] = interpret()
    return pd.concat(parts, ignore_index=True), facts


def score_rows(targets: pd.DataFrame, forecasts: pd.DataFrame, model: Forecaster) -> pd.DataFrame:
    """Join one model's forecasts onto the target rows; unforecast rows get 0 and imputed=True."""
    forecasts = forecasts.assign(
        origin_date=pd.to_datetime(forecasts["origin_date"]).astype("datetime64[ns]")
    )
    joined = targets.merge(forecasts.drop(columns="target_date"), on=JOIN, how="left", validate="one_to_one")
    imputed = joined["p50"].isna().to_numpy()
    columns = ["p50", "p10", "p90"] if model.has_quantiles else ["p50"]
    for c in columns:
        joined[c] = joined[c].fillna(0.0)
    if not model.has_quantiles:
        joined["p10"] = np.nan
        joined["p90"] = np.nan
    joined["imputed"] = imputed
    joined.insert(0, "model", model.name)
    return joined


def evaluate(
    panel: Panel,
    protocol: Protocol,
    forecasters: Sequence[Forecaster],
    retrain_every: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Evaluation:
    """Forecast and score every model on `protocol`'s rows.

    `retrain_every` K: fit at windows 0, K, 2K, ...; None: never (a trained model must declare
    `trained_until`, which must precede every origin). Models with `refit_every_origin` are
    re-estimated at every origin regardless.
    """
    if retrain_every is not None and retrain_every < 1:
        raise SalesForecastError(f"--retrain-every {retrain_every}: expected a positive number of origins")
    names = [m.name for m in forecasters]
    if len(set(names)) != len(names):
        raise SalesForecastError(f"model names must be unique, got {names}")
    protocol.check(panel)
    targets = protocol.targets(panel)
    frames, facts = [], {}
    for model in forecasters:
        forecasts, info = run_model(model, panel, protocol, retrain_every, progress)
        scored = score_rows(targets, forecasts, model)
        info["rows"] = len(scored)
        info["imputed_rows"] = int(scored["imputed"].sum())
        info["has_quantiles"] = bool(model.has_quantiles)
        frames.append(scored)
        facts[model.name] = info
    return Evaluation(protocol, pd.concat(frames, ignore_index=True), facts, retrain_every)


def trained_forecasters(settings: Any) -> tuple[list[Forecaster], list[str]]:
    """The trained model(s) to score beside the baselines, and a note when there is none.

    Contract: the module `salesforecast.model.forecaster` exposes `load_trained(settings)`,
    returning a Forecaster (with `trained_until`) or None when no checkpoint exists.
    """
    try:
        module = importlib.import_module(TRAINED_MODEL_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name and TRAINED_MODEL_MODULE.startswith(exc.name):
            return [], [f"no trained model found: {TRAINED_MODEL_MODULE} does not exist yet; baselines only"]
        raise
    loader = getattr(module, "load_trained", None)
    if loader is None:
        return [], [f"no trained model found: {TRAINED_MODEL_MODULE} has no load_trained(); baselines only"]
    model = loader(settings)
    if model is None:
        return [], [f"no trained model found in {settings.artifacts_dir}; baselines only"]
    return [model], []
