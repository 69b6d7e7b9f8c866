"""Training recipes compared on validation periods only: how a variant is judged before any test.

    python benchmarks/validation.py [--data-dir DIR] [--workdir DIR] [--only NAME ...]
                                    [--periods holiday summer] [--seeds 42 43]

Each recipe is trained (`python -m salesforecast.training.train`, 2 workers) for every seed at two
cut-offs, and scored on the 13 validation weeks before each; no week of either test protocol's
holdout period (2012-02-03 on) is read:
- `holiday`: cut-off 2012-02-03, the default split, so validation is 2011-11-04..2012-01-27
  (Thanksgiving and Christmas weigh 5 each in the WMAE);
- `summer`: cut-off 2011-11-04, validation 2011-08-05..2011-10-28, weeks like most of the holdout.
Why two: the holiday period alone misled once. Last year's neighbouring weeks as inputs
(`--season-window 1`) had the lower validation loss there for both seeds, then scored worse on
the holdout for both (`accuracy.json`); the summer period saw it. A variant is adopted only if
it validates better in both periods, for both seeds.
Every run reads one training frame (the Feast training set of this directory's features, up to
2012-02-02) and has its own directory; a finished run of the same configuration is not run again.
Figures: best validation loss (the pinball loss the run trained on) and the validation WMAE of
the model kept, in sales units, next to the seasonal naive's on the same windows.
Writes benchmarks/results/validation.json, keeping recipes not rerun, and prints the table
that docs/model.md shows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from _common import REAL_DATA, RESULTS, at_start, code_version, write_results

HOLDOUT_START = "2012-02-03"
PERIODS = {"holiday": HOLDOUT_START, "summer": "2011-11-04"}  # name -> cut-off
RECIPES = {  # name -> training-module options; variants of the default of their day
    "default": [],
    "epochs-10": ["--epochs", "10"],  # the default until it lost to 20 epochs here
    "season-window-1": ["--season-window", "1", "--epochs", "10"],
    "holiday-weight-5": ["--holiday-weight", "5", "--epochs", "10"],
    "scale-weight-1": ["--scale-weight", "1", "--epochs", "10"],
}
IGNORED = {"workdir", "profile", "resume", "frame_path"}


def training_frame(data_dir: Path, workdir: Path) -> Path:
    """Build the features once and save the training frame every run reads."""
    path = workdir / "frame.parquet"
    if not path.is_file():
        features = workdir / "features"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "salesforecast.cli",
                "features",
                "build",
                "--data-dir",
                str(data_dir),
                "--workdir",
                str(features),
            ],
            check=True,
        )
        from salesforecast.config import Settings
        from salesforecast.model.windows import load_training_frame
        from salesforecast.offline.files import atomic_write

        frame = load_training_frame(Settings(workdir=features), end=pd.Timestamp(HOLDOUT_START))
        atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    return path


def run(options: list[str], frame: Path, workdir: Path) -> dict:
    """Train once (unless this configuration already finished here); the kept model's figures."""
    from salesforecast.training import checkpoint as ckpt
    from salesforecast.training.train import build_parser

    wanted = {k: v for k, v in vars(build_parser().parse_args(options)).items() if k not in IGNORED}
    summary_path = workdir / "artifacts" / ckpt.SUMMARY
    saved = json.loads(summary_path.read_text()).get("config", {}) if summary_path.is_file() else None
    seconds = None
    if saved is None or any(saved.get(k, v) != v for k, v in wanted.items()):
        started = time.perf_counter()
        subprocess.run(
            [
                "torchrun",
                "--standalone",
                "--nproc-per-node",
                "2",
                "-m",
                "salesforecast.training.train",
                "--workdir",
                str(workdir),
                "--frame-path",
                str(frame),
                *options,
            ],
            check=True,
        )
        seconds = round(time.perf_counter() - started, 1)
    summary = json.loads(summary_path.read_text())
    log = ckpt.read_log(workdir / "artifacts" / ckpt.TRAINING_LOG)
    kept = next(e for e in log if e["epoch"] == summary["best_epoch"])
    return {
        "best_epoch": summary["best_epoch"],
        "val_loss": round(summary["best_val_loss"], 4),
        "val_wmae": round(kept["val_wmae"], 1),
        "seasonal_naive_val_wmae": round(kept["val_naive_wmae"], 1),
        "train_s": seconds,
        "code": code_version(),
        "cpu": at_start()["cpu"],  # bf16 kernels differ between CPUs: compare runs of one CPU
    }


def table(recipes: dict) -> str:
    """Markdown: the kept model's validation WMAE (and epoch) per recipe, seed and period."""
    columns = [f"{p}-{s}" for p in PERIODS for s in (42, 43)]
    rows = ["| recipe | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    naive = {c: r[c]["seasonal_naive_val_wmae"] for r in recipes.values() for c in columns if c in r}
    rows.append(
        "| seasonal naive | " + " | ".join(f"{naive[c]:,.1f}" if c in naive else "" for c in columns) + " |"
    )
    for name, runs in recipes.items():
        cells = [
            f"{runs[c]['val_wmae']:,.1f} (ep {runs[c]['best_epoch']})" if c in runs else "not run"
            for c in columns
        ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REAL_DATA)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/salesforecast-bench-validation"))
    parser.add_argument("--only", nargs="*", choices=sorted(RECIPES))
    parser.add_argument("--seeds", nargs="*", type=int, default=[42, 43])
    parser.add_argument("--periods", nargs="*", choices=sorted(PERIODS), default=list(PERIODS))
    args = parser.parse_args()

    from salesforecast.config import Settings

    default_seed = Settings().seed
    frame = training_frame(args.data_dir, args.workdir)
    previous = RESULTS / "validation.json"
    figures = json.loads(previous.read_text()).get("recipes", {}) if previous.is_file() else {}
    for name, options in RECIPES.items():
        if args.only and name not in args.only:
            continue
        figures[name] = figures.get(name, {}) | {"options": " ".join(options)}
        for period in args.periods:
            for seed in args.seeds:
                where = args.workdir / f"{name}-{period}-{seed}"
                seeded = [] if seed == default_seed else ["--seed", str(seed)]
                cutoff = ["--cutoff", PERIODS[period]]
                figures[name][f"{period}-{seed}"] = run([*options, *cutoff, *seeded], frame, where)
        write_results("validation", {"periods": PERIODS, "recipes": figures})  # after each recipe
    print(table(json.loads((RESULTS / "validation.json").read_text())["recipes"]))


if __name__ == "__main__":
    main()
