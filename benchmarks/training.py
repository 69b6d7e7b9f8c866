"""Training benchmark: samples/s for 1 and 2 workers in fp32 and bf16, and the default full-data run.

    python benchmarks/training.py [--data-dir DIR] [--workdir DIR] [--quick]

Every figure comes from the runs' own `training_log.jsonl` / `training_summary.json` (samples/s
counts training steps only, not validation or data loading); the full-data run's wall time is
measured around the whole `salesforecast train --workers 2` command. The machine's load average
is recorded before and after each run: on a shared machine the figures are only as good as it
was quiet. Targets (2-core machine): 2 workers >= 1.6x the samples/s of 1 worker; the default
full-data run under 10 minutes and below the seasonal-naive validation loss.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "training.json"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "walmart"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cli(*args: str, env: dict[str, str]) -> float:
    """Run `salesforecast ...` as a user would; returns its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "salesforecast.cli", *args], check=True, env=env)
    return time.perf_counter() - started


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def throughput(workdir: Path, workers: int, amp: bool, windows: int, env: dict[str, str]) -> dict:
    artifacts = workdir / "artifacts"
    shutil.rmtree(artifacts, ignore_errors=True)
    before = load()
    args = ["train", "--workdir", str(workdir), "--workers", str(workers), "--epochs", "1"]
    args += ["--windows-per-epoch", str(windows), "--sample-size", "100000"]
    wall = cli(*args, *([] if amp else ["--no-amp"]), env=env)
    entry = [json.loads(line) for line in (artifacts / "training_log.jsonl").read_text().splitlines()][-1]
    return {
        "workers": workers,
        "precision": "bf16" if amp else "fp32",
        "samples_per_s": round(entry["samples_per_s"], 1),
        "train_s": round(entry["train_s"], 1),
        "windows": entry["samples"],
        "command_wall_s": round(wall, 1),
        "load_before": before,
        "load_after": load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/salesforecast-bench-training"))
    parser.add_argument("--quick", action="store_true", help="short throughput runs, no full-data run")
    args = parser.parse_args()

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    if not (args.workdir / "offline" / "sales_features.parquet").is_file():
        cli("features", "build", "--data-dir", str(args.data_dir), "--workdir", str(args.workdir), env=env)

    import torch

    windows = 2048 if args.quick else 8192
    runs = [throughput(args.workdir, w, amp, windows, env) for amp in (False, True) for w in (1, 2)]
    by = {(r["workers"], r["precision"]): r["samples_per_s"] for r in runs}
    result: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "amx": bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()),
            "torch": torch.__version__,
            "note": "load averages are recorded per run; figures from a busy machine understate throughput",
        },
        "throughput": runs,
        "scaling_2_vs_1_workers": {p: round(by[(2, p)] / by[(1, p)], 2) for p in ("fp32", "bf16")},
        "bf16_vs_fp32": {str(w): round(by[(w, "bf16")] / by[(w, "fp32")], 2) for w in (1, 2)},
        "targets": {"scaling_2_vs_1_workers": 1.6, "full_run_wall_s": 600},
    }

    if not args.quick:
        artifacts = args.workdir / "artifacts"
        shutil.rmtree(artifacts, ignore_errors=True)
        before = load()
        wall = cli("train", "--workdir", str(args.workdir), "--workers", "2", env=env)
        summary = read_json(artifacts / "training_summary.json")
        result["full_data_default_run"] = {
            "command": "salesforecast train --workers 2",
            "wall_s": round(wall, 1),
            "epochs_run": summary["epochs_run"],
            "best_epoch": summary["best_epoch"],
            "best_val_loss": round(summary["best_val_loss"], 4),
            "seasonal_naive_val_loss": round(summary["val_naive_loss"], 4),
            "beats_seasonal_naive": summary["best_val_loss"] < summary["val_naive_loss"],
            "best_val_wmae": round(summary["best_val_wmae"], 1),
            "seasonal_naive_val_wmae": round(summary["val_naive_wmae"], 1),
            "mean_samples_per_s": round(summary["mean_samples_per_s"], 1),
            "load_before": before,
            "load_after": load(),
        }

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, RESULTS)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
