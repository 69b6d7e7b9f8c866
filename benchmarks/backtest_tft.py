"""The TFT on the backtest protocol (10 two-month folds, Mar 2011..Oct 2012), against the baselines.

    python benchmarks/backtest_tft.py [--data-dir DIR] [--workdir DIR] [--retrain-every K] [-- TRAIN OPTIONS]

Builds the offline tables in its own work directory, trains the fold-1 model (`salesforecast train
--workers 2 --horizon 9 --cutoff 2011-03-04` plus any TRAIN OPTIONS: the backtest's longest fold
is 9 weeks), then runs `salesforecast evaluate --protocol backtest --retrain-every K`, which
retrains the same recipe with every K-th fold's start as the cut-off. Each command is timed; the
fold WMAEs of every model come from `<workdir>/reports/metrics.json`. A rerun reuses the fold
models it already has (same recipe, same data); `--fresh` starts over.
Writes benchmarks/results/backtest_tft.json, keyed by K and the train options, keeping other runs.
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

FIRST_FOLD = "2011-03-04"
HORIZON = 9


def _salesforecast(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "salesforecast.cli", *args], check=True)
    return round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REAL_DATA)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/salesforecast-bench-backtest"))
    parser.add_argument("--retrain-every", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="delete the work directory first")
    parser.add_argument("train_options", nargs="*", help="extra `salesforecast train` options, after --")
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(args.workdir, ignore_errors=True)

    where = ["--workdir", str(args.workdir), "--no-track"]
    load_before = [round(x, 2) for x in os.getloadavg()]
    seconds = {
        "features": _salesforecast(
            "features", "build", "--data-dir", str(args.data_dir), "--workdir", str(args.workdir)
        ),
        "fold_1_model": _salesforecast(
            "train",
            "--workers",
            "2",
            "--horizon",
            str(HORIZON),
            "--cutoff",
            FIRST_FOLD,
            *args.train_options,
            *where,
        ),
    }
    command = ["evaluate", "--protocol", "backtest", "--retrain-every", str(args.retrain_every)]
    seconds["evaluate"] = _salesforecast(*command, "--data-dir", str(args.data_dir), *where)

    backtest = json.loads((args.workdir / "reports" / "metrics.json").read_text())["protocols"]["backtest"]
    models = {
        name: {
            "wmae_mean_of_folds": round(entry["score"], 1),
            "per_fold_wmae": [
                round(entry["per_fold"][f]["wmae"], 1) for f in sorted(entry["per_fold"], key=int)
            ],
        }
        for name, entry in backtest["models"].items()
    }
    previous = RESULTS / "backtest_tft.json"
    runs = json.loads(previous.read_text()).get("runs", {}) if previous.is_file() else {}
    key = f"retrain_every_{args.retrain_every}" + "".join(f" {o}" for o in args.train_options)
    runs[key] = {
        "commands": [
            f"salesforecast train --workers 2 --horizon {HORIZON} --cutoff {FIRST_FOLD} "
            + " ".join(args.train_options),
            "salesforecast " + " ".join(command),
        ],
        "seconds": seconds,
        "generated_at": backtest.get("generated_at"),
        "models": models,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    path = write_results("backtest_tft", {"runs": runs})
    print(path.read_text())


if __name__ == "__main__":
    main()
