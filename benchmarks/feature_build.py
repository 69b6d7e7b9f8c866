"""Wall time and peak memory of `salesforecast features build` on the full real data, per profile.

    python benchmarks/feature_build.py [--data-dir DIR] [--repeats 3]

Each run is a fresh process (the command a user types), so peak memory is that process's max RSS.
Targets (issue 2), 2-core machine: local profile under 15 s and under 2 GB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REAL_DATA, write_results

BENCH_DSN = "postgresql://postgres@127.0.0.1:5432/salesforecast_bench"


def run_once(profile: str, data_dir: Path, workdir: Path) -> tuple[float, float]:
    cmd = [
        sys.executable, "-m", "salesforecast.cli", "features", "build",
        "--data-dir", str(data_dir), "--profile", profile, "--workdir", str(workdir),
    ]  # fmt: skip
    started = time.perf_counter()
    # A database of its own, so a benchmark never replaces a user's tables.
    env = {**os.environ, "SALESFORECAST_PG_DSN": os.environ.get("BENCH_PG_DSN", BENCH_DSN)}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{profile}: build failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return wall, usage.ru_maxrss / 1024  # KiB -> MiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=REAL_DATA)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, dict[str, float | list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for profile in ("local", "postgres"):
            runs = [run_once(profile, args.data_dir, Path(tmp)) for _ in range(args.repeats)]
            walls, peaks = [r[0] for r in runs], [r[1] for r in runs]
            figures[profile] = {
                "wall_seconds_median": round(statistics.median(walls), 2),
                "wall_seconds_runs": [round(w, 2) for w in walls],
                "peak_rss_mib_max": round(max(peaks), 1),
            }
            print(f"{profile:9s} median {statistics.median(walls):6.2f} s   peak {max(peaks):7.1f} MiB")
    targets = {"local_wall_seconds": 15, "local_peak_rss_mib": 2048}
    met = (
        figures["local"]["wall_seconds_median"] < targets["local_wall_seconds"]  # type: ignore[operator]
        and figures["local"]["peak_rss_mib_max"] < targets["local_peak_rss_mib"]  # type: ignore[operator]
    )
    path = write_results(
        "feature_build",
        {"data_dir": str(args.data_dir), "repeats": args.repeats, "profiles": figures,
         "targets": targets, "local_targets_met": met},
    )  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
