"""MLflow tracking of the training and evaluation stages, from the files each stage wrote.

Called after a stage has finished (never inside the DDP loop), it reads
`<workdir>/artifacts/training_summary.json`, `training_log.jsonl` and `best_model.pt`, or
`<workdir>/reports/metrics.json` with the report and its charts, and logs:

- a training run (experiment `salesforecast-training`): the training and model configuration as
  parameters, every epoch's numbers as metrics with step = epoch, the summary's numbers as
  `summary.*` metrics, the summary and the log as artefacts, and the model, registered as
  `salesforecast-tft` with its signature (inputs `store`, `dept`; parameter `horizon`; outputs
  `store`, `dept`, `h`, `date`, `p10`, `p50`, `p90`);
- an evaluation run (experiment `salesforecast-evaluation`): protocol, horizon and test period as
  parameters, every model's pooled metrics as `<model>.<metric>`, per step as
  `<model>.per_horizon.<metric>` (step = h) and per fold as `<model>.per_fold.<metric>`
  (step = fold), and metrics.json, report.md and the PNG charts as artefacts.

Where: `Settings.mlflow_uri` (`SALESFORECAST_MLFLOW_URI`): empty (the default) means a SQLite
store `<workdir>/mlflow.db` with artefacts under `<workdir>/mlartifacts` (MLflow 3 refuses the
plain file store); `off` turns tracking off; anything else is a tracking URI.

Tracking never fails a stage: without MLflow, turned off, or when logging fails, the functions
return a `Tracked` whose `line()` says why it was skipped. MLflow's telemetry is turned off.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salesforecast.config import Settings

TRAINING_EXPERIMENT = "salesforecast-training"
EVALUATION_EXPERIMENT = "salesforecast-evaluation"
REGISTERED_MODEL = "salesforecast-tft"
OFF = {"off", "false", "0", "no", "none", "disabled"}
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
MAX_PARAM_LENGTH = 6000
# Set before MLflow is imported (a value already in the environment wins): no telemetry, no
# progress bars, and a remote server that does not answer costs seconds, not minutes of retries.
MLFLOW_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


@dataclass
class Tracked:
    """What tracking did: a run (and a model version), or why it was skipped."""

    what: str
    uri: str | None = None
    run_id: str | None = None
    model_version: str | None = None
    skipped: str | None = None

    def line(self) -> str:
        if self.skipped is not None:
            return f"mlflow: {self.what} tracking skipped: {self.skipped}"
        model = f"; model {REGISTERED_MODEL} version {self.model_version}" if self.model_version else ""
        return f"mlflow: {self.what} run {self.run_id} in {self.uri}{model}"


def tracking_uri(settings: Settings) -> str | None:
    """The tracking URI of these settings, or None when tracking is turned off."""
    value = settings.mlflow_uri.strip()
    if value.lower() in OFF:
        return None
    return value or f"sqlite:///{(settings.workdir / DB_FILE).resolve()}"


def log_training(settings: Settings, enabled: bool = True) -> Tracked:
    """Log the finished training in `<workdir>/artifacts` as a run and register its model.

    On a cluster every pod runs `salesforecast train`; only the first (rank 0, node 0) logs.
    """
    ranks = {key: os.environ.get(key, "0") for key in ("RANK", "PET_NODE_RANK", "GROUP_RANK")}
    others = {key: value for key, value in ranks.items() if value != "0"}
    if enabled and others:
        return Tracked("training", skipped=f"rank 0 logs the run, this process is {others}")
    return _guarded("training", settings, enabled, _log_training)


def log_evaluation(settings: Settings, protocol: str, enabled: bool = True) -> Tracked:
    """Log one protocol's entry of `<workdir>/reports/metrics.json` and the report as a run."""
    return _guarded("evaluation", settings, enabled, lambda s, uri: _log_evaluation(s, uri, protocol))


# ----------------------------------------------------------------------------- plumbing


def _guarded(what: str, settings: Settings, enabled: bool, log: Any) -> Tracked:
    if not enabled:
        return Tracked(what, skipped="turned off (--no-track)")
    uri = tracking_uri(settings)
    if uri is None:
        return Tracked(what, skipped=f"turned off (SALESFORECAST_MLFLOW_URI={settings.mlflow_uri})")
    for key, value in MLFLOW_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import mlflow  # noqa: F401
    except ImportError as exc:
        return Tracked(what, uri, skipped=f"mlflow is not installed ({exc})")
    try:
        with _quiet():
            return log(settings, uri)
    except Exception as exc:  # tracking must never fail a stage
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return Tracked(what, uri, skipped=f"{type(exc).__name__}: {message[:300]}")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's and alembic's INFO lines, warnings and registry messages stay out of the CLI output."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _client(settings: Settings, uri: str) -> Any:
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment(client: Any, settings: Settings, uri: str, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if not settings.mlflow_uri.strip():  # the default local store keeps its artefacts beside it
        location = (settings.workdir / ARTIFACTS_DIR).resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _flatten(prefix: str, values: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out |= _flatten(name, value)
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[name] = text[:MAX_PARAM_LENGTH]
    return out


def _log_batch(client: Any, run_id: str, params: Mapping[str, str], metrics: list[Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000])


def _metric(key: str, value: Any, step: int = 0) -> Any:
    import time

    from mlflow.entities import Metric

    return Metric(key, float(value), int(time.time() * 1000), step)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found") from None


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


# ----------------------------------------------------------------------------- training


def model_signature(horizon: int) -> Any:
    """Inputs: one row per series; parameter: weeks ahead; outputs: one row per series and week."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("long", "store"), ColSpec("long", "dept")]),
        outputs=Schema(
            [
                ColSpec("integer", "store"),
                ColSpec("integer", "dept"),
                ColSpec("integer", "h"),
                ColSpec("datetime", "date"),
                ColSpec("double", "p10"),
                ColSpec("double", "p50"),
                ColSpec("double", "p90"),
            ]
        ),
        params=ParamSchema([ParamSpec("horizon", "long", int(horizon))]),
    )


def _log_training(settings: Settings, uri: str) -> Tracked:
    import mlflow
    import torch

    from salesforecast import __version__
    from salesforecast.training import checkpoint as ckpt

    artifacts = settings.artifacts_dir
    summary = _read_json(artifacts / ckpt.SUMMARY)
    log = ckpt.read_log(artifacts / ckpt.TRAINING_LOG)
    best = artifacts / ckpt.BEST_MODEL
    bundle = ckpt.load_torch(best) if best.is_file() else {}
    model_config = bundle.get("model_config", {})
    digest = _digest(best) if best.is_file() else None

    client = _client(settings, uri)
    experiment = _experiment(client, settings, uri, TRAINING_EXPERIMENT)
    params = _flatten("train", summary.get("config", {})) | _flatten("model", model_config)
    for key in ("trained_until", "val_start", "cutoff"):
        if key in bundle:
            params[f"data.{key}"] = str(bundle[key])
    for key in ("world_size", "threads", "amp", "device", "rows", "series", "train_windows", "val_windows"):
        if key in summary:
            params[f"run.{key}"] = str(summary[key])
    metrics = [
        _metric(key, value, int(entry["epoch"]))
        for entry in log
        for key, value in entry.items()
        if key != "epoch" and _is_number(value)
    ]
    metrics += [_metric(f"summary.{k}", v) for k, v in summary.items() if _is_number(v)]
    tags = {
        "salesforecast.stage": "train",
        "salesforecast.version": __version__,
        "salesforecast.workdir": str(settings.workdir.resolve()),
        "salesforecast.ranks_in_sync": str(summary.get("ranks_in_sync")),
    }
    if digest:
        tags["salesforecast.model_digest"] = digest
    run_name = f"train-{bundle.get('trained_until', summary.get('config', {}).get('cutoff', ''))}"
    with mlflow.start_run(experiment_id=experiment, run_name=run_name, tags=tags) as run:
        run_id = run.info.run_id
        _log_batch(client, run_id, params, metrics)
        for name in (ckpt.SUMMARY, ckpt.TRAINING_LOG):
            if (artifacts / name).is_file():
                client.log_artifact(run_id, str(artifacts / name), "training")
        version = None
        if bundle:
            horizon = int(model_config.get("horizon", settings.horizon))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(MODEL_CODE),
                artifacts={"bundle": str(best)},
                signature=model_signature(horizon),
                pip_requirements=[f"salesforecast=={__version__}", f"torch=={torch.__version__}"],
                tags={"salesforecast.model_digest": digest or ""},
            )
            version = _register(client, info, run_id, bundle, digest)
    return Tracked("training", uri, run_id, version)


def _register(client: Any, info: Any, run_id: str, bundle: Mapping[str, Any], digest: str | None) -> str:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(
            REGISTERED_MODEL, description="Temporal Fusion Transformer, weekly sales P10/P50/P90"
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    tags = {"model_digest": digest or "", "trained_until": str(bundle.get("trained_until", ""))}
    version = client.create_model_version(
        REGISTERED_MODEL, source=info.model_uri, run_id=run_id, tags=tags, model_id=info.model_id
    )
    return str(version.version)


# ----------------------------------------------------------------------------- evaluation


def _log_evaluation(settings: Settings, uri: str, protocol: str) -> Tracked:
    import mlflow

    from salesforecast import __version__
    from salesforecast.evaluation import report

    reports = settings.reports_dir
    payload = _read_json(reports / report.METRICS_FILE)
    entry = payload.get("protocols", {}).get(protocol)
    if entry is None:
        raise KeyError(f"{reports / report.METRICS_FILE} holds no {protocol!r} evaluation")
    period = entry.get("test_period", {})
    data = entry.get("data", {})
    models: Mapping[str, Mapping[str, Any]] = entry.get("models", {})
    params = {
        "protocol": protocol,
        "horizon": str(entry.get("horizon")),
        "test_start": str(period.get("start")),
        "test_end": str(period.get("end")),
        "test_weeks": str(period.get("weeks")),
        "origins": str(entry.get("origins")),
        "score": str(entry.get("score")),
        "retrain_every": str(entry.get("retrain_every")),
        "models": ",".join(models),
    }
    params |= {f"data.{k}": str(v) for k, v in data.items() if not isinstance(v, Mapping | list)}
    for name, file in (data.get("files") or {}).items():
        params[f"data.{name}.sha256"] = str(file.get("sha256"))
    metrics = []
    for name, result in models.items():
        key = name.replace(" ", "_")
        metrics += [_metric(f"{key}.score", result["score"])] if _is_number(result.get("score")) else []
        if _is_number(result.get("imputed_rows")):
            metrics.append(_metric(f"{key}.imputed_rows", result["imputed_rows"]))
        metrics += [_metric(f"{key}.{m}", v) for m, v in result.get("pooled", {}).items() if _is_number(v)]
        for group in ("per_horizon", "per_fold"):
            for step, values in (result.get(group) or {}).items():
                metrics += [
                    _metric(f"{key}.{group}.{m}", v, int(step)) for m, v in values.items() if _is_number(v)
                ]
    tags = {
        "salesforecast.stage": "evaluate",
        "salesforecast.version": __version__,
        "salesforecast.workdir": str(settings.workdir.resolve()),
        "salesforecast.generated_at": str(entry.get("generated_at")),
    }
    if entry.get("notes"):
        tags["salesforecast.notes"] = " | ".join(map(str, entry["notes"]))[:MAX_PARAM_LENGTH]
    best = settings.artifacts_dir / "best_model.pt"
    if any(name.startswith("tft") for name in models) and best.is_file():
        tags["salesforecast.model_digest"] = _digest(best)

    client = _client(settings, uri)
    experiment = _experiment(client, settings, uri, EVALUATION_EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment, run_name=f"evaluate-{protocol}", tags=tags) as run:
        run_id = run.info.run_id
        _log_batch(client, run_id, params, metrics)
        files = [reports / report.METRICS_FILE, reports / report.REPORT_FILE, *sorted(reports.glob("*.png"))]
        for path in files:
            if path.is_file():
                client.log_artifact(run_id, str(path), "report")
    return Tracked("evaluation", uri, run_id)
