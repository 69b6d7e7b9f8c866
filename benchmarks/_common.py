"""What every benchmark records beside its figures: the machine, the load, the command, the code, the date."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "walmart"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1m_before": round(os.getloadavg()[0], 2),
        "matmul_gflops_1_core": matmul_gflops(),
    }


def matmul_gflops(n: int = 1024, repeats: int = 20) -> float:
    """fp32 matrix-multiply throughput of one core (torch, one thread), best of `repeats`.

    The machines this project is measured on share "AMD EPYC, 2 cores" as their description but
    have differed about 2x in speed between sessions; this figure makes such runs comparable.
    """
    import time

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = torch.randn(n, n, generator=torch.Generator().manual_seed(0))
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    return round(2 * n**3 / best / 1e9, 1)


_AT_START: dict[str, Any] | None = None


def code_version() -> str:
    """The commit the figures come from, `-dirty` when src/ has uncommitted changes."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--", "src") else "")


def at_start() -> dict[str, Any]:
    """The machine as the benchmark found it (load, speed), read once when it first asks."""
    global _AT_START
    if _AT_START is None:
        _AT_START = machine()
    return _AT_START


def write_results(name: str, figures: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "command": "python " + " ".join(sys.argv),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code": code_version(),
        "machine": at_start(),
        **figures,
    }
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)
    return path


at_start()  # on import, so the figures describe the machine before the benchmark loads it
