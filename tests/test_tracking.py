"""MLflow tracking: a training run (params, per-epoch metrics, artefacts, a registered model with its
signature) and an evaluation run (params, pooled and per-step metrics, report and charts) land in
the local store; turned off, without MLflow or when logging fails, tracking returns cleanly."""

from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import train_tiny_model
from test_evaluation_report import Banded
from typer.testing import CliRunner

from salesforecast import tracking
from salesforecast.cli import app
from salesforecast.config import Settings
from salesforecast.data.ingest import load
from salesforecast.evaluation import baselines, harness, protocols, report
from salesforecast.training import checkpoint as ckpt

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracking into the local store must not open a network connection (telemetry included)."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network connection attempted to {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    monkeypatch.delenv("SALESFORECAST_MLFLOW_URI", raising=False)


@pytest.fixture(scope="module")
def trained(synth_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training artefacts of a few-second TFT (horizon 2) and one holdout evaluation (horizon 2)."""
    wd = tmp_path_factory.mktemp("tracked")
    frame_path = wd / "frame.parquet"
    synth_frame[synth_frame["store"] <= 2].to_parquet(frame_path)
    train_tiny_model(wd, frame_path, horizon=2)
    return wd


@pytest.fixture(scope="module")
def evaluated(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    wd = tmp_path_factory.mktemp("evaluated")
    raw = load(synth_dir)
    panel = protocols.Panel.from_frame(raw.train)
    result = harness.evaluate(
        panel, protocols.holdout(horizon=2), [*baselines.default_baselines(), Banded()], retrain_every=13
    )
    result.notes.append("test note")
    report.write(result, wd / "reports", report.data_version(raw.sources, raw.train))
    return wd


def copy_workdir(source: Path, tmp_path: Path) -> Path:
    """A fresh store per test: the fixtures' files, no mlflow.db yet."""
    wd = tmp_path / "w"
    shutil.copytree(source, wd, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts", "*.parquet"))
    return wd


def client_for(wd: Path) -> Any:
    uri = f"sqlite:///{(wd / tracking.DB_FILE).resolve()}"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def artifact_paths(client: Any, run_id: str, folder: str) -> set[str]:
    return {item.path for item in client.list_artifacts(run_id, folder)}


def test_training_run_holds_params_epoch_metrics_artefacts_and_the_registered_model(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    wd = copy_workdir(trained, tmp_path)
    tracked = tracking.log_training(Settings(workdir=wd))
    assert tracked.skipped is None, tracked.line()
    assert tracked.model_version == "1" and tracked.run_id in tracked.line()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert (wd / "mlflow.db").is_file() and (wd / "mlartifacts").is_dir()

    client = client_for(wd)
    run = client.get_run(tracked.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == tracking.TRAINING_EXPERIMENT
    params = run.data.params
    assert params["train.epochs"] == "1" and params["train.batch_size"] == "32"
    assert params["model.horizon"] == "2" and params["model.encoder_length"] == "12"
    assert params["model.hidden_size"] == "16" and params["data.cutoff"] == "2012-02-03"

    log = ckpt.read_log(wd / "artifacts" / ckpt.TRAINING_LOG)
    summary = json.loads((wd / "artifacts" / ckpt.SUMMARY).read_text())
    for key in ("train_loss", "val_loss", "val_wmae", "samples_per_s"):
        history = client.get_metric_history(tracked.run_id, key)
        assert [(m.step, m.value) for m in history] == [(e["epoch"], pytest.approx(e[key])) for e in log]
    assert run.data.metrics["summary.best_val_loss"] == pytest.approx(summary["best_val_loss"])
    assert artifact_paths(client, tracked.run_id, "training") == {
        "training/training_summary.json",
        "training/training_log.jsonl",
    }
    assert run.data.tags["salesforecast.model_digest"] == tracking._digest(wd / "artifacts" / ckpt.BEST_MODEL)

    version = client.get_model_version(tracking.REGISTERED_MODEL, "1")
    assert version.run_id == tracked.run_id and version.tags["trained_until"] == "2012-01-27"
    info = mlflow.models.get_model_info(f"models:/{tracking.REGISTERED_MODEL}/1")
    signature = info.signature
    assert signature.inputs.input_names() == ["store", "dept"]
    assert signature.outputs.input_names() == ["store", "dept", "h", "date", "p10", "p50", "p90"]
    assert [(p.name, p.default) for p in signature.params.params] == [("horizon", 2)]

    # The registered model predicts through the serving Forecaster, given the logged weights.
    calls: list[tuple[Any, ...]] = []

    class FakeForecaster:
        def __init__(self, settings: Settings, options: Any = None, path: Path | None = None) -> None:
            assert path is not None and path.name == ckpt.BEST_MODEL and path.is_file()

        def forecast_frame(self, keys: list[tuple[int, int]], horizon: int | None = None) -> pd.DataFrame:
            calls.append((keys, horizon))
            rows = [(s, d, h) for s, d in keys for h in range(1, (horizon or 2) + 1)]
            frame = pd.DataFrame(rows, columns=["store", "dept", "h"]).astype("int32")
            return frame.assign(
                date=pd.Timestamp("2012-11-02"), p10=1.0, p50=2.0, p90=3.0, feature_timestamp=None
            )

    monkeypatch.setattr("salesforecast.serving.predict.Forecaster", FakeForecaster)
    mlflow.set_tracking_uri(f"sqlite:///{wd / tracking.DB_FILE}")
    model = mlflow.pyfunc.load_model(f"models:/{tracking.REGISTERED_MODEL}/1")
    out = model.predict(pd.DataFrame({"store": [1, 2], "dept": [1, 3]}), params={"horizon": 1})
    assert calls == [([(1, 1), (2, 3)], 1)]
    assert list(out.columns) == ["store", "dept", "h", "date", "p10", "p50", "p90"] and len(out) == 2

    # A second training run registers version 2 of the same model.
    again = tracking.log_training(Settings(workdir=wd))
    assert again.model_version == "2" and again.run_id != tracked.run_id


def test_evaluation_run_holds_protocol_metrics_per_step_and_the_report(
    evaluated: Path, tmp_path: Path
) -> None:
    wd = copy_workdir(evaluated, tmp_path)
    tracked = tracking.log_evaluation(Settings(workdir=wd), "holdout")
    assert tracked.skipped is None, tracked.line()

    client = client_for(wd)
    run = client.get_run(tracked.run_id)
    assert client.get_experiment(run.info.experiment_id).name == tracking.EVALUATION_EXPERIMENT
    entry = json.loads((wd / "reports" / "metrics.json").read_text())["protocols"]["holdout"]
    params = run.data.params
    assert params["protocol"] == "holdout" and params["horizon"] == "2"
    assert (params["test_start"], params["test_end"]) == ("2012-02-03", "2012-10-26")
    assert set(params["models"].split(",")) == {*entry["models"]} >= {"svd_regression", "banded"}
    assert params["data.rows"] == str(entry["data"]["rows"])
    assert params["data.train.sha256"] == entry["data"]["files"]["train"]["sha256"]
    for name, model in entry["models"].items():
        assert run.data.metrics[f"{name}.wmae"] == pytest.approx(model["pooled"]["wmae"])
        assert run.data.metrics[f"{name}.score"] == pytest.approx(model["score"])
        history = client.get_metric_history(tracked.run_id, f"{name}.per_horizon.wmae")
        assert sorted((m.step, m.value) for m in history) == [
            (int(h), pytest.approx(values["wmae"])) for h, values in sorted(model["per_horizon"].items())
        ]
    assert "naive.coverage_p10_p90" not in run.data.metrics  # a point model has no band: not logged as 0
    assert "banded.coverage_p10_p90" in run.data.metrics
    assert run.data.tags["salesforecast.notes"] == "test note"
    files = artifact_paths(client, tracked.run_id, "report")
    pngs = {f"report/{p.name}" for p in (wd / "reports").glob("*.png")}
    assert {"report/metrics.json", "report/report.md"} <= files and pngs and pngs <= files

    missing = tracking.log_evaluation(Settings(workdir=wd), "backtest")
    assert missing.skipped is not None and "no 'backtest' evaluation" in missing.skipped


def test_tracking_off_unavailable_or_failing_returns_cleanly(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wd = copy_workdir(trained, tmp_path)
    off = tracking.log_training(Settings(workdir=wd, mlflow_uri="off"))
    assert off.skipped and "SALESFORECAST_MLFLOW_URI=off" in off.line()
    monkeypatch.setenv("SALESFORECAST_MLFLOW_URI", "OFF")
    assert tracking.tracking_uri(Settings(workdir=wd)) is None
    monkeypatch.delenv("SALESFORECAST_MLFLOW_URI")
    assert tracking.log_evaluation(Settings(workdir=wd), "holdout", enabled=False).skipped
    assert not (wd / "mlflow.db").exists()

    given = Settings(workdir=wd, mlflow_uri=f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert tracking.tracking_uri(given) == given.mlflow_uri

    # Nothing to log: a clear reason, no exception.
    empty = tracking.log_training(Settings(workdir=tmp_path / "empty"))
    assert empty.skipped and "training_summary.json not found" in empty.skipped
    # A URI MLflow refuses (MLflow 3 turned the plain file store off).
    refused = tracking.log_training(Settings(workdir=wd, mlflow_uri=(tmp_path / "mlruns").as_uri()))
    assert refused.skipped and refused.line().startswith("mlflow: training tracking skipped: ")
    assert "\n" not in refused.line()

    # Other pods of a cluster job leave the run to rank 0.
    monkeypatch.setenv("RANK", "1")
    assert "rank 0" in (tracking.log_training(Settings(workdir=wd)).skipped or "")
    monkeypatch.delenv("RANK")

    # MLflow not installed.
    monkeypatch.setitem(sys.modules, "mlflow", None)
    for result in (
        tracking.log_training(Settings(workdir=wd)),
        tracking.log_evaluation(Settings(workdir=wd), "holdout"),
    ):
        assert result.skipped and "mlflow is not installed" in result.line()
    assert not (wd / "mlflow.db").exists()


def test_cli_train_logs_after_training_and_obeys_the_off_switches(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wd = copy_workdir(trained, tmp_path)
    launched: list[Any] = []
    monkeypatch.setattr(
        "salesforecast.training.launch.launch", lambda config, workers: launched.append(config)
    )
    runner = CliRunner()
    args = ["train", "--workdir", str(wd), "--epochs", "1"]
    off = runner.invoke(app, [*args, "--no-track"])
    assert off.exit_code == 0, off.output
    assert "tracking skipped: turned off (--no-track)" in off.output
    env_off = runner.invoke(app, args, env={"SALESFORECAST_MLFLOW_URI": "off"})
    assert env_off.exit_code == 0 and "SALESFORECAST_MLFLOW_URI=off" in env_off.output
    assert not (wd / "mlflow.db").exists()
    tracked = runner.invoke(app, args)
    assert tracked.exit_code == 0, tracked.output
    assert (
        "mlflow: training run" in tracked.output
        and f"{tracking.REGISTERED_MODEL} version 1" in tracked.output
    )
    assert len(launched) == 3 and (wd / "mlflow.db").is_file()


def test_the_pipeline_evaluate_stage_logs_and_records_the_run(synth_dir: Path, tmp_path: Path) -> None:
    from salesforecast import pipeline

    settings = Settings(workdir=tmp_path / "w", data_dir=synth_dir, horizon=2)
    shown: list[tuple[str, Any]] = []
    plan = pipeline.stages(settings, show=lambda stage, value: shown.append((stage, value)))
    summary = next(stage for stage in plan if stage.name == "evaluate").run()
    tracked = [value for stage, value in shown if stage == "tracking"]
    assert len(tracked) == 1 and tracked[0].run_id and summary["mlflow"] == tracked[0].run_id
    run = client_for(settings.workdir).get_run(tracked[0].run_id)
    assert run.data.params["horizon"] == "2" and "svd_regression.wmae" in run.data.metrics

    quiet = pipeline.stages(settings, show=lambda stage, value: None, track=False)
    assert next(s for s in quiet if s.name == "evaluate").run()["mlflow"] == "turned off (--no-track)"
