"""End-to-end benchmark: `salesforecast run` on the real data, the quickstart and the full default run.

    python benchmarks/pipeline.py [--data-dir DIR] [--workdir DIR] [--only quick|full]

Each run starts from an empty work directory (nothing to resume), is timed around the whole
command as a user types it, and records every stage's seconds (from `<workdir>/stages/`) and the
holdout metrics of every model (from `<workdir>/reports/metrics.json`). Targets on the 2-core
machine: `--quick` under 5 minutes, the full default run under 20 minutes.
Writes benchmarks/results/pipeline.json (a run given with --only keeps the other's last figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import REAL_DATA, RESULTS, write_results

TARGETS_S = {"quick": 300, "full": 1200}
STAGES = ("validate", "features", "feast", "training_set", "train", "evaluate", "materialize", "forecast")


def run_pipeline(data_dir: Path, workdir: Path, quick: bool) -> dict:
    shutil.rmtree(workdir, ignore_errors=True)
    command = ["salesforecast", "run", "--data-dir", str(data_dir), "--workdir", str(workdir)]
    command += ["--quick"] if quick else []
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "salesforecast.cli", *command[1:]], check=True)
    wall = time.perf_counter() - started
    stages = {}
    for name in STAGES:
        record = json.loads((workdir / "stages" / f"{name}.json").read_text())
        stages[name] = round(record["seconds"], 1)
    holdout = json.loads((workdir / "reports" / "metrics.json").read_text())["protocols"]["holdout"]
    models = {
        name: {
            "wmae": round(entry["pooled"]["wmae"], 1),
            "wmae_h1": round(entry["per_horizon"]["1"]["wmae"], 1),
            "wape": round(entry["pooled"]["wape"], 4),
            "coverage_p10_p90": entry["pooled"].get("coverage_p10_p90"),
        }
        for name, entry in holdout["models"].items()
    }
    summary = json.loads((workdir / "artifacts" / "training_summary.json").read_text())
    return {
        "command": " ".join(command),
        "wall_s": round(wall, 1),
        "target_s": TARGETS_S["quick" if quick else "full"],
        "met": wall < TARGETS_S["quick" if quick else "full"],
        "stages_s": stages,
        "training": {
            k: summary[k] for k in ("series", "epochs_run", "best_epoch", "best_val_loss", "val_naive_loss")
        },
        "holdout": models,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REAL_DATA)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/salesforecast-bench-pipeline"))
    parser.add_argument("--only", choices=("quick", "full"))
    args = parser.parse_args()

    previous = RESULTS / "pipeline.json"
    figures = json.loads(previous.read_text()).get("runs", {}) if previous.is_file() else {}
    for kind in ("quick", "full"):
        if args.only in (None, kind):
            figures[kind] = run_pipeline(args.data_dir, args.workdir / kind, quick=kind == "quick")
    path = write_results("pipeline", {"runs": figures})
    print(path.read_text())


if __name__ == "__main__":
    main()
