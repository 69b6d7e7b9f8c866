"""Training end to end on the synthetic panel: artefacts, the date split, resume, and 2-worker DDP."""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from salesforecast.cli import app
from salesforecast.errors import SalesForecastError
from salesforecast.model import windows as W
from salesforecast.model.predict import forecast_origin
from salesforecast.model.tft import TFTEnsemble
from salesforecast.training import checkpoint as ckpt
from salesforecast.training.launch import launch, torchrun_args
from salesforecast.training.train import TrainConfig, build_parser, run, to_argv

CUTOFF = "2012-02-03"


@pytest.fixture(scope="module")
def frame_path(synth_frame, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("frame") / "frame.parquet"
    synth_frame.to_parquet(path)
    return str(path)


def tiny(frame_path: str, workdir, **overrides) -> TrainConfig:
    """A few seconds of training: small model, short windows, few of them."""
    values = {
        "workdir": str(workdir),
        "frame_path": frame_path,
        "cutoff": CUTOFF,
        "val_weeks": 8,
        "epochs": 2,
        "windows_per_epoch": 128,
        "max_val_windows": 64,
        "batch_size": 32,
        "encoder_length": 12,
        "horizon": 4,
        "hidden_size": 16,
        "n_heads": 2,
        "amp": False,
        "seed": 1,
    }
    return TrainConfig(**(values | overrides))


def artifacts(workdir):
    return workdir / "artifacts"


def test_training_writes_loadable_artifacts(frame_path, synth_frame, tmp_path):
    summary = run(tiny(frame_path, tmp_path))
    out = artifacts(tmp_path)
    names = (ckpt.BEST_MODEL, ckpt.LAST_CHECKPOINT, ckpt.SCALER, ckpt.TARGET_SCALER, ckpt.TRAINING_LOG)
    for name in (*names, ckpt.SUMMARY):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))

    log = ckpt.read_log(out / ckpt.TRAINING_LOG)
    assert [e["epoch"] for e in log] == [1, 2]
    for entry in log:
        assert {"train_loss", "val_loss", "samples_per_s", "wall_s"} <= set(entry)
        assert np.isfinite(entry["train_loss"]) and np.isfinite(entry["val_loss"])
        assert entry["samples"] == 128
    assert summary["best_val_loss"] == min(e["val_loss"] for e in log)

    model, prep, bundle = ckpt.load_model(out / ckpt.BEST_MODEL)
    assert bundle["trained_until"] == "2012-01-27" and prep.fitted_until == "2011-12-09"
    assert bundle["epoch"] == summary["best_epoch"]
    assert pickle.loads((out / ckpt.SCALER).read_bytes()) == bundle["preprocessing"]
    assert pickle.loads((out / ckpt.TARGET_SCALER).read_bytes()) == bundle["target_scaler"]

    panel = W.build_panel(synth_frame, prep)
    forecast = forecast_origin(model, panel, pd.Timestamp(CUTOFF))
    assert len(forecast) == 4 * len(panel.keys)
    values = forecast[["p10", "p50", "p90"]].to_numpy()
    assert np.isfinite(values).all() and (np.diff(values, axis=1) >= 0).all()

    # A model whose inputs differ from what this version gathers (an older release's) is refused.
    bundle["model_config"]["known_reals"] = bundle["model_config"]["known_reals"][:-1]
    old = tmp_path / "older.pt"
    torch.save(bundle, old)
    with pytest.raises(SalesForecastError, match=r"older\.pt: .*other inputs.*known_reals"):
        ckpt.load_model(old)


def test_nothing_on_or_after_the_cutoff_is_read(frame_path, synth_frame, tmp_path):
    base = run(tiny(frame_path, tmp_path / "a", epochs=1))
    poisoned = synth_frame.copy()
    late = W._dates(poisoned) >= pd.Timestamp(CUTOFF)
    poisoned.loc[late, "weekly_sales"] = 1e9
    poisoned.loc[late, ["temperature", "sales_lag_1"]] = -1e9
    path = tmp_path / "poisoned.parquet"
    poisoned.to_parquet(path)
    again = run(tiny(str(path), tmp_path / "b", epochs=1))
    assert again["best_val_loss"] == base["best_val_loss"]
    assert again["param_digests"] == base["param_digests"]


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_a_killed_run_resumes_to_the_same_model(frame_path, tmp_path, monkeypatch, ema_decay):
    config = tiny(frame_path, tmp_path / "whole", epochs=3, ema_decay=ema_decay)
    run(config)
    whole = torch.load(artifacts(tmp_path / "whole") / ckpt.LAST_CHECKPOINT, weights_only=False)

    # Kill the second run right after epoch 1's checkpoint and log are written.
    write_log = ckpt.write_log

    def killed(path, entries):
        write_log(path, entries)
        raise KeyboardInterrupt

    killed_config = replace(config, workdir=str(tmp_path / "killed"))
    monkeypatch.setattr(ckpt, "write_log", killed)
    with pytest.raises(KeyboardInterrupt):
        run(killed_config)
    monkeypatch.setattr(ckpt, "write_log", write_log)
    assert len(ckpt.read_log(artifacts(tmp_path / "killed") / ckpt.TRAINING_LOG)) == 1

    summary = run(replace(killed_config, resume=True))
    assert summary["resumed_from"] == 1 and summary["epochs_run"] == 3
    resumed = torch.load(artifacts(tmp_path / "killed") / ckpt.LAST_CHECKPOINT, weights_only=False)
    for name, tensor in whole["model_state"].items():
        assert torch.equal(tensor, resumed["model_state"][name]), name
    logs = [ckpt.read_log(artifacts(tmp_path / w) / ckpt.TRAINING_LOG) for w in ("whole", "killed")]
    assert [e["val_loss"] for e in logs[0]] == [e["val_loss"] for e in logs[1]]


def test_refit_trains_the_selected_epochs_on_the_validation_weeks_too(frame_path, synth_frame, tmp_path):
    summary = run(tiny(frame_path, tmp_path, epochs=3, patience=1, refit=True))
    selection = ckpt.read_log(artifacts(tmp_path) / "selection" / ckpt.TRAINING_LOG)
    chosen = min(selection, key=lambda e: e["val_loss"])["epoch"]
    assert summary["refit"]["epochs"] == summary["best_epoch"] == chosen
    assert summary["best_val_loss"] == min(e["val_loss"] for e in selection)  # out of sample
    refit_log = ckpt.read_log(artifacts(tmp_path) / ckpt.TRAINING_LOG)
    assert [e["epoch"] for e in refit_log] == list(range(1, chosen + 1))

    # The refit's windows reach the cut-off; the selection run's stop at the validation weeks.
    selected = json.loads((artifacts(tmp_path) / "selection" / ckpt.SUMMARY).read_text())
    assert summary["train_windows"] > selected["train_windows"]
    _, _, bundle = ckpt.load_model(artifacts(tmp_path) / ckpt.BEST_MODEL)
    assert bundle["epoch"] == chosen and bundle["train_config"]["refit"] is True

    # Still nothing on or after the cut-off: poisoning the test period changes nothing.
    poisoned = synth_frame.copy()
    poisoned.loc[W._dates(poisoned) >= pd.Timestamp(CUTOFF), "weekly_sales"] = 1e9
    path = tmp_path / "poisoned.parquet"
    poisoned.to_parquet(path)
    again = run(tiny(str(path), tmp_path / "b", epochs=3, patience=1, refit=True))
    assert again["param_digests"] == summary["param_digests"]


def test_an_ensemble_forecasts_the_mean_of_its_members(frame_path, synth_frame, tmp_path):
    summary = run(tiny(frame_path, tmp_path, ensemble=2, seed=5))
    assert summary["ensemble"] == 2 and [m["seed"] for m in summary["members"]] == [5, 6]
    model, prep, bundle = ckpt.load_model(artifacts(tmp_path) / ckpt.BEST_MODEL)
    assert isinstance(model, TFTEnsemble) and bundle["members"] == 2
    members = [ckpt.load_model(artifacts(tmp_path) / f"member-{i}" / ckpt.BEST_MODEL)[0] for i in (1, 2)]
    assert not torch.equal(*(next(m.parameters()) for m in members)), "members differ by their seed"

    panel = W.build_panel(synth_frame, prep)
    series = torch.arange(len(panel.keys))
    batch = W.gather(panel, series, torch.full_like(series, panel.week(CUTOFF) - 4), 12, 4)
    with torch.no_grad():
        mean = torch.stack([m(batch) for m in members]).mean(0)
        assert torch.allclose(model(batch), mean)
        assert torch.equal(model.predict(batch), mean.sort(-1).values)
    assert summary["best_val_loss"] <= max(m["best_val_loss"] for m in summary["members"])
    # The first member is exactly the single model of its seed (later ones share its data sample).
    alone = run(tiny(frame_path, tmp_path / "alone", seed=5))
    assert alone["best_val_loss"] == summary["members"][0]["best_val_loss"]


def test_the_weight_average_is_what_is_validated_and_kept(frame_path, tmp_path):
    summary = run(tiny(frame_path, tmp_path, epochs=1, ema_decay=0.9))
    out = artifacts(tmp_path)
    (entry,) = ckpt.read_log(out / ckpt.TRAINING_LOG)
    assert entry["val_loss"] == summary["best_val_loss"] and entry["val_loss"] != entry["val_loss_raw"]
    last = ckpt.load_torch(out / ckpt.LAST_CHECKPOINT)
    kept = ckpt.load_torch(out / ckpt.BEST_MODEL)["model_state"]
    for name, tensor in kept.items():
        assert torch.equal(tensor, last["ema_state"][f"module.{name}"]), name
    assert any(not torch.equal(t, last["model_state"][n]) for n, t in kept.items())  # not the raw weights


def test_resume_refuses_a_checkpoint_of_another_run(frame_path, tmp_path):
    run(tiny(frame_path, tmp_path, epochs=1))
    with pytest.raises(SalesForecastError, match=r"different run.*hidden_size: 16 -> 32"):
        run(tiny(frame_path, tmp_path, hidden_size=32, resume=True))


def test_resume_refuses_a_checkpoint_of_other_optimisation_settings(frame_path, tmp_path):
    # With --ensemble/--refit a later phase may find a finished checkpoint of an earlier run there.
    run(tiny(frame_path, tmp_path, epochs=1))
    with pytest.raises(SalesForecastError, match=r"different run.*lr: 0.002 -> 0.005"):
        run(tiny(frame_path, tmp_path, epochs=1, lr=0.005, resume=True))
    with pytest.raises(SalesForecastError, match=r"different run.*epochs: 1 -> 2"):
        run(tiny(frame_path, tmp_path, epochs=2, resume=True))


def test_diverged_training_is_a_clear_error_not_a_silent_success(frame_path, tmp_path):
    for extra in ({}, {"refit": True}, {"ensemble": 2}):
        with pytest.raises(SalesForecastError, match=r"diverged.*try a lower --lr"):
            run(tiny(frame_path, tmp_path / str(len(extra)) / str(extra), lr=1e30, **extra))


def test_a_seasonal_naive_baseline_model_trains_saves_and_loads_with_it(frame_path, tmp_path):
    summary = run(tiny(frame_path, tmp_path, epochs=1, baseline="seasonal_naive"))
    assert math.isfinite(summary["best_val_loss"])
    model, _, _ = ckpt.load_model(artifacts(tmp_path) / ckpt.BEST_MODEL)
    assert model.config.baseline == "seasonal_naive"
    assert model.head.weight.abs().sum() > 0  # trained away from the zero start


def test_resume_without_a_checkpoint_starts_from_scratch(frame_path, tmp_path):
    summary = run(tiny(frame_path, tmp_path, epochs=1, resume=True))
    assert summary["resumed_from"] is None and summary["epochs_run"] == 1


def test_two_ddp_workers_end_with_identical_weights(frame_path, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # launch() sets these; restore them afterwards
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    monkeypatch.setenv("SALESFORECAST_LAUNCH_TIME", "0")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert launch(tiny(frame_path, tmp_path), workers=2) == 0
    summary = json.loads((artifacts(tmp_path) / ckpt.SUMMARY).read_text())
    assert summary["world_size"] == 2
    assert len(summary["param_digests"]) == 2 and summary["ranks_in_sync"]
    assert summary["param_digests"][0] == summary["param_digests"][1]
    log = ckpt.read_log(artifacts(tmp_path) / ckpt.TRAINING_LOG)
    assert [e["samples"] for e in log] == [128, 128]  # the epoch's windows, split between the ranks
    model, _, _ = ckpt.load_model(artifacts(tmp_path) / ckpt.BEST_MODEL)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_bad_inputs_are_clear_errors(frame_path, tmp_path):
    with pytest.raises(SalesForecastError, match=r"nope\.parquet: cannot read"):
        run(tiny(str(tmp_path / "nope.parquet"), tmp_path))
    with pytest.raises(SalesForecastError, match="no training windows"):
        run(tiny(frame_path, tmp_path, cutoff="2010-06-04"))
    with pytest.raises(SalesForecastError, match=r"--val-weeks 2: .* at least the horizon"):
        run(tiny(frame_path, tmp_path, val_weeks=2))
    with pytest.raises(SalesForecastError, match=r"--encoder-length 7: .* at least that long"):
        run(tiny(frame_path, tmp_path, encoder_length=7))
    result = CliRunner().invoke(app, ["train", "--workdir", str(tmp_path), "--cutoff", "soon"])
    assert result.exit_code == 2 and "not a date" in result.output
    with pytest.raises(SalesForecastError, match=r"--baseline 'mean': expected one of none, seasonal_naive"):
        run(tiny(frame_path, tmp_path, baseline="mean"))
    result = CliRunner().invoke(app, ["train", "--workdir", str(tmp_path), "--baseline", "mean"])
    assert result.exit_code == 2 and "expected one of none, seasonal_naive" in result.output


def test_config_round_trips_through_the_worker_command_line():
    config = TrainConfig(
        workdir="/w",
        sample_size=1000,
        windows_per_epoch=None,
        amp=False,
        resume=True,
        lr=0.01,
        refit=True,
        ensemble=3,
    )
    assert TrainConfig(**vars(build_parser().parse_args(to_argv(config)))) == config
    assert TrainConfig(**vars(build_parser().parse_args(to_argv(TrainConfig())))) == TrainConfig()


def test_torchrun_topology_comes_from_the_environment():
    config = TrainConfig(epochs=1)
    local = torchrun_args(config, 2, {})
    assert local[:5] == ["--standalone", "--nnodes", "1", "--nproc-per-node", "2"]
    trainjob = torchrun_args(
        config, 2, {"PET_NNODES": "2", "PET_NPROC_PER_NODE": "1", "PET_MASTER_ADDR": "m"}
    )
    assert trainjob[:2] == ["--module", "salesforecast.training.train"] and "--standalone" not in trainjob
    assert torchrun_args(config, 3, {"PET_NNODES": "2"})[:2] == ["--nproc-per-node", "3"]


def test_cli_defaults_match_the_training_defaults():
    import inspect

    from salesforecast.cli import train

    defaults = TrainConfig()
    for name, param in inspect.signature(train).parameters.items():
        if hasattr(defaults, name) and param.default is not None:
            expected = getattr(defaults, name)
            assert param.default == (expected if expected is not None else 0), name


def test_optional_settings_survive_the_command_line_as_none():
    config = TrainConfig(windows_per_epoch=None, max_val_windows=None, cutoff="2011-06-03", scale_weight=0.5)
    argv = to_argv(config)
    assert "--windows-per-epoch" in argv and argv[argv.index("--windows-per-epoch") + 1] == "none"
    assert TrainConfig(**vars(build_parser().parse_args(argv))) == config
    assert to_argv(TrainConfig()) == []
