"""Holdout accuracy of TFT recipes on the real data: the default model, other seeds, ensembles.

    python benchmarks/accuracy.py [--data-dir DIR] [--workdir DIR] [--only NAME ...]

One work directory per recipe under --workdir, sharing nothing: each builds its features, trains
(`salesforecast train --workers 2 ...`) and evaluates (`salesforecast evaluate`, the holdout). A
recipe whose directory already holds a finished training run of the same configuration, and
whose report is newer than its model, is not run again, so an interrupted run resumes.
Why: one seed moves the holdout score by several percent, so one run of one recipe says little;
this file keeps every recipe's pooled and h = 1 WMAE (and the baselines', the same in every
directory) side by side. Writes benchmarks/results/accuracy.json, keeping recipes not rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import REAL_DATA, RESULTS, at_start, code_version, write_results

RECIPES = {  # name -> `salesforecast train` options beyond --workers 2
    "default": [],
    "seed-43": ["--seed", "43"],
    # The default before 2026-12-04 23:00 UTC: 10 epochs (benchmarks/validation.py chose 20).
    "epochs-10": ["--epochs", "10"],
    "epochs-10-seed-43": ["--epochs", "10", "--seed", "43"],
    "ensemble-3-epochs-10": ["--ensemble", "3", "--epochs", "10"],
    # The default before 2026-12-04 13:00 UTC: every store-week covariate.
    "covariates-all": ["--covariates", "all", "--epochs", "10"],
    "covariates-all-seed-43": ["--covariates", "all", "--seed", "43", "--epochs", "10"],
    "ensemble-3-covariates-all": ["--ensemble", "3", "--covariates", "all", "--epochs", "10"],
    "refit-covariates-all": ["--refit", "--covariates", "all", "--epochs", "10"],
    # Quantiles as offsets from the seasonal naive (TFTConfig.baseline).
    "baseline-seasonal-naive": ["--baseline", "seasonal_naive", "--epochs", "10"],
    "baseline-seasonal-naive-seed-43": ["--baseline", "seasonal_naive", "--seed", "43", "--epochs", "10"],
    # Last year's weeks 53 and 51 earlier as inputs too (Preprocessing.season_window).
    "season-window-1": ["--season-window", "1", "--epochs", "10"],
    "season-window-1-seed-43": ["--season-window", "1", "--seed", "43", "--epochs", "10"],
}
IGNORED = {"workdir", "profile", "resume", "frame_path"}  # where it ran, not what it trained


def _salesforecast(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "salesforecast.cli", *args], check=True)
    return round(time.perf_counter() - started, 1)


def _trained_config(options: list[str]) -> dict:
    """The TrainConfig `salesforecast train` builds from these options (its defaults are
    TrainConfig's: tests/test_training.py checks it), less where it ran."""
    from salesforecast.training.train import TrainConfig

    switches = {"--refit"}
    valued = [o for o in options if o not in switches]
    flags = dict(zip(valued[::2], valued[1::2], strict=True))
    config = TrainConfig(
        seed=int(flags["--seed"]) if "--seed" in flags else None,
        ensemble=int(flags.get("--ensemble", 1)),
        refit="--refit" in options,
        covariates=flags.get("--covariates", TrainConfig.covariates),
        baseline=flags.get("--baseline", TrainConfig.baseline),
        season_window=int(flags.get("--season-window", TrainConfig.season_window)),
        epochs=int(flags.get("--epochs", TrainConfig.epochs)),
    )
    return {k: v for k, v in vars(config).items() if k not in IGNORED}


def _finished(workdir: Path, options: list[str]) -> bool:
    summary = workdir / "artifacts" / "training_summary.json"
    if not summary.is_file():
        return False
    saved = json.loads(summary.read_text()).get("config", {})
    defaults = _trained_config([])  # a field newer than the run had its default's behaviour
    return all(saved.get(k, defaults[k]) == v for k, v in _trained_config(options).items())


def run_recipe(name: str, options: list[str], data_dir: Path, workdir: Path) -> dict:
    where = ["--workdir", str(workdir), "--no-track"]
    seconds: dict[str, float | None] = {"features": None, "train": None, "evaluate": None}  # None: reused
    if not _finished(workdir, options):
        seconds["features"] = _salesforecast("features", "build", "--data-dir", str(data_dir), *where[:2])
        seconds["train"] = _salesforecast("train", "--workers", "2", *options, *where)
    metrics, model = workdir / "reports" / "metrics.json", workdir / "artifacts" / "best_model.pt"
    if not (metrics.is_file() and metrics.stat().st_mtime > model.stat().st_mtime):
        seconds["evaluate"] = _salesforecast("evaluate", "--data-dir", str(data_dir), *where)
    holdout = json.loads(metrics.read_text())["protocols"]["holdout"]
    summary = json.loads((workdir / "artifacts" / "training_summary.json").read_text())
    return {
        "command": " ".join(["salesforecast train --workers 2", *options]) + "; salesforecast evaluate",
        "seconds": seconds,
        "train_wall_s": round(summary.get("wall_s_since_launch", 0.0), 1),  # as the run recorded it
        "best_val_loss": summary.get("best_val_loss"),
        "member_val_losses": [m["best_val_loss"] for m in summary.get("members", [])] or None,
        "holdout": {
            model_name: {
                "wmae": round(entry["pooled"]["wmae"], 1),
                "wmae_h1": round(entry["per_horizon"]["1"]["wmae"], 1),
                "wmae_by_h": [round(entry["per_horizon"][str(h)]["wmae"], 1) for h in range(1, 9)],
                "wape": round(entry["pooled"]["wape"], 4),
                "coverage_p10_p90": entry["pooled"].get("coverage_p10_p90"),
            }
            for model_name, entry in holdout["models"].items()
        },
        "generated_at": holdout.get("generated_at"),
        "code": code_version(),
        "cpu": at_start()["cpu"],  # machines differ: bf16 kernels (AMX or not) change every run's digits
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REAL_DATA)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/salesforecast-bench-accuracy"))
    parser.add_argument("--only", nargs="*", choices=sorted(RECIPES))
    args = parser.parse_args()

    previous = RESULTS / "accuracy.json"
    figures = json.loads(previous.read_text()).get("recipes", {}) if previous.is_file() else {}
    for name, options in RECIPES.items():
        if not args.only or name in args.only:
            figures[name] = run_recipe(name, options, args.data_dir, args.workdir / name)
    path = write_results("accuracy", {"recipes": figures})
    print(path.read_text())


if __name__ == "__main__":
    main()
