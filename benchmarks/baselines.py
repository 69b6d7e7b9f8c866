"""Every baseline on both protocols on the real data, against the published reference figures.

    python benchmarks/baselines.py [--data-dir DIR]

Runs the evaluation harness (the code `salesforecast evaluate` uses) on the holdout (horizon 8)
and the backtest, and records each model's headline score, WMAE per step and per fold, the
pooled metrics and the wall time. The reference figures were measured beforehand by scripts
independent of this project (the course's published backtest figures among them).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REAL_DATA, write_results

from salesforecast.data.ingest import load
from salesforecast.evaluation import baselines, harness, protocols

REFERENCE = {
    "backtest": {
        "seasonal_naive": 1887,
        "seasonal_regression": 1653,
        "svd_regression_no_christmas": 1609,
        "svd_regression": 1580,
        "global LightGBM, direct multi-horizon (not a baseline here)": "1534-1548",
    },
    "holdout_h1": {
        "naive": 1740,
        "seasonal_naive": 1800,
        "global LightGBM with lags (not a baseline here)": 1250,
    },
}


def models() -> list[Any]:
    return [
        *baselines.default_baselines(),
        baselines.SeasonalRegression(rank=8, christmas=False, name="svd_regression_no_christmas"),
        baselines.SeasonalRegression(rank=10, christmas=True, name="svd_regression_rank10"),
    ]


def run(panel: protocols.Panel, plan: protocols.Protocol, retrain_every: int | None) -> dict[str, Any]:
    started = time.perf_counter()
    result = harness.evaluate(panel, plan, models(), retrain_every)
    summary = result.summary()
    wall = time.perf_counter() - started
    out: dict[str, Any] = {"protocol": plan.describe(), "wall_seconds": round(wall, 2), "models": {}}
    for name, entry in summary.items():
        figures = {
            "score": round(entry["score"], 1),
            "wmae_h1": round(entry["per_horizon"]["1"]["wmae"], 1),
            "wmae_per_step": {h: round(m["wmae"], 1) for h, m in entry["per_horizon"].items()},
            "pooled": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in entry["pooled"].items()},
            "imputed_rows": entry["imputed_rows"],
            "fits": entry["fits"],
            "seconds": entry["seconds"],
        }
        if "per_fold" in entry:
            figures["wmae_per_fold"] = {f: round(m["wmae"], 1) for f, m in entry["per_fold"].items()}
        out["models"][name] = figures
        print(
            f"{plan.name:8s} {name:30s} score {entry['score']:8.1f}  h=1 {figures['wmae_h1']:8.1f}"
            f"  ({entry['seconds']:.1f} s)"
        )
    print(f"{plan.name}: {wall:.1f} s for all models")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=REAL_DATA)
    args = parser.parse_args()
    started = time.perf_counter()
    raw = load(args.data_dir)
    panel = protocols.Panel.from_frame(raw.train)
    load_seconds = time.perf_counter() - started
    results = {
        "holdout": run(panel, protocols.holdout(horizon=8), retrain_every=None),
        "backtest": run(panel, protocols.backtest(), retrain_every=1),
    }
    path = write_results(
        "baselines",
        {
            "data_dir": str(args.data_dir),
            "load_seconds": round(load_seconds, 2),
            "total_wall_seconds": round(time.perf_counter() - started, 2),
            "reference": REFERENCE,
            "notes": [
                "score: holdout = pooled WMAE over steps 1..8; backtest = mean of the 10 fold WMAEs",
                "origin = first forecast week; h = 1 forecasts the origin week from data before it",
                "mape is over rows with |actual| >= $1,000 only; fractions, not percent",
                "rows a model cannot forecast (no history yet) are scored as a forecast of 0",
                "baselines are re-estimated at every origin",
            ],
            **results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
