"""Resumable stages: a re-run skips what is up to date and resumes at the first changed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from salesforecast.stages import Stage, StageRunner


def _stages(calls: list[str], params: dict[str, int], out: Path) -> list[Stage]:
    def make(name: str) -> Stage:
        def run() -> dict[str, int]:
            calls.append(name)
            (out / f"{name}.txt").write_text(name)
            return {"value": params[name]}

        return Stage(
            name, name.title(), run, inputs=lambda: params[name], outputs=lambda: [out / f"{name}.txt"]
        )

    return [make(n) for n in ("a", "b", "c")]


def test_rerun_skips_then_resumes_at_first_changed_stage(tmp_path: Path) -> None:
    calls: list[str] = []
    params = {"a": 1, "b": 1, "c": 1}
    runner = StageRunner(tmp_path / "records")
    first = runner.run(_stages(calls, params, tmp_path))
    assert calls == ["a", "b", "c"] and not any(r.skipped for r in first)

    again = runner.run(_stages(calls, params, tmp_path))
    assert calls == ["a", "b", "c"] and all(r.skipped for r in again)
    assert again[1].summary == {"value": 1}

    params["b"] = 2  # b's input changed: a is skipped, b and everything after it re-run
    runner.run(_stages(calls, params, tmp_path))
    assert calls[3:] == ["b", "c"]

    (tmp_path / "a.txt").unlink()  # a lost its output: the whole chain re-runs
    runner.run(_stages(calls, params, tmp_path))
    assert calls[5:] == ["a", "b", "c"]
    record = json.loads((tmp_path / "records" / "c.json").read_text())
    assert record["summary"] == {"value": 1} and record["fingerprint"]


def test_failed_stage_is_not_recorded(tmp_path: Path) -> None:
    def boom() -> dict:
        raise RuntimeError("stage failed")

    runner = StageRunner(tmp_path / "records")
    with pytest.raises(RuntimeError):
        runner.run([Stage("x", "X", boom)])
    assert not (tmp_path / "records" / "x.json").exists()


def test_run_stops_at_the_failing_stage_with_its_own_error(synth_dir: Path, tmp_path: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    from salesforecast.cli import app

    bad = tmp_path / "bad"
    shutil.copytree(synth_dir, bad)
    (bad / "stores.csv").write_text("Store,Type,Size\n1,Q,100\n")
    result = CliRunner().invoke(app, ["run", "--data-dir", str(bad), "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert "[1/8] Validate the data" in result.output
    assert "stores.csv, line 2, column 'Type'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "w" / "stages" / "validate.json").exists()


def test_a_bad_environment_setting_is_one_line_not_a_traceback(monkeypatch, tmp_path) -> None:
    from typer.testing import CliRunner

    from salesforecast.cli import app

    monkeypatch.setenv("SALESFORECAST_PROFILE", "bogus")
    result = CliRunner().invoke(app, ["report", "--workdir", str(tmp_path)])
    assert result.exit_code == 2
    assert "invalid setting: SALESFORECAST_PROFILE='bogus'" in result.output
    assert "Traceback" not in result.output


def test_a_deleted_sqlite_online_store_makes_run_materialize_again(tmp_path: Path) -> None:
    from salesforecast.config import Profile, Settings
    from salesforecast.featurestore.config import StoreOptions
    from salesforecast.pipeline import online_files

    local = Settings(workdir=tmp_path)
    (path,) = online_files(local)
    assert path.name == "online_store.db" and path.is_relative_to(tmp_path)
    assert online_files(local, StoreOptions(online_store="redis")) == []  # a server: checked at read time
    assert online_files(Settings(workdir=tmp_path, profile=Profile.postgres)) == []


def test_run_evaluates_again_when_the_model_was_replaced(tmp_path: Path) -> None:
    import os

    from salesforecast.config import Settings
    from salesforecast.pipeline import stages

    settings = Settings(workdir=tmp_path, data_dir=tmp_path)
    (evaluate,) = [s for s in stages(settings, track=False) if s.name == "evaluate"]
    model = tmp_path / "artifacts" / "best_model.pt"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"one model")
    before = evaluate.inputs()
    model.write_bytes(b"another model, say `train --ensemble 3`")
    os.utime(model, ns=(1, 1))
    assert evaluate.inputs() != before


def test_runs_closing_scores_say_when_the_data_are_synthetic() -> None:
    from salesforecast.cli import holdout_scores

    scores = {"pooled": {"wmae": 1.0, "wape": 0.1}, "per_horizon": {"1": {"wmae": 1.0}}}
    holdout = {"test_period": {"start": "2012-02-03", "end": "2012-10-26"}, "models": {"naive": scores}}
    assert "SYNTHETIC" not in str(holdout_scores(holdout | {"data": {"synthetic": False}}).title)
    assert "SYNTHETIC" in str(holdout_scores(holdout | {"data": {"synthetic": True}}).title)


def test_paths_that_are_not_folders_get_one_line_errors(tmp_path) -> None:
    from typer.testing import CliRunner

    from salesforecast.cli import app

    a_file = tmp_path / "f.csv"
    a_file.write_text("x\n")
    runner = CliRunner()
    missing = runner.invoke(
        app, ["run", "--data-dir", str(tmp_path / "nowhere"), "--workdir", str(tmp_path / "w")]
    )
    assert missing.exit_code == 2 and "nowhere" in missing.output and "is not a directory" in missing.output
    # A file given as the work directory: the OS error names the path, no traceback.
    workdir = runner.invoke(app, ["data", "synth", "--out", str(a_file / "data")])
    assert workdir.exit_code == 2 and str(a_file) in workdir.output
    assert "Traceback" not in missing.output + workdir.output
