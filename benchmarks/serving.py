"""The forecasting API on the real data, postgres profile: latency, throughput, batch scoring.

    OMP_NUM_THREADS=1 python benchmarks/serving.py [--data-dir DIR] [--workdir DIR] [--requests 1000]
        [--model best_model.pt] [--results NAME]

Uses its own database (`salesforecast_bench`, or `--pg-dsn`) and work directory, never the user's.
Builds the offline tables there, trains a model with the default architecture for one short epoch
when the work directory has none (latency depends on the architecture, not on the weights; pass
`--model` to measure a fully trained one), materializes the online store (a full run, then an
incremental one), starts `salesforecast serve` on a free loopback port and sends requests with httpx:

- single-series requests (random series), concurrency 1 and 8, p50/p99 and throughput;
- 100-series batch requests, p50/p99;
- batch scoring of every series in process (`serving.batch.score_all`), min of 3 runs;
- in process, the median time of each part of a 1- and a 100-series forecast (online read,
  inputs, model, the whole call).

The 1-minute load average is recorded before and after: the machine's 2 cores are shared.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REAL_DATA, write_results

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/salesforecast_bench"


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _ms(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1000
    return {
        "n": len(a),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "mean_ms": round(float(a.mean()), 2),
    }


def _breakdown(forecaster, keys: list, repeats: int = 30) -> dict[str, dict[str, float]]:
    """Median ms of each part of `Forecaster.forecast` in process, for 1 and 100 random series."""
    from salesforecast.serving.schemas import SeriesKey

    rng = random.Random(1)
    out = {}
    for n in (1, 100):
        samples = [rng.sample(keys, n) for _ in range(repeats)]
        parts: dict[str, list[float]] = {"online_read": [], "inputs": [], "model": [], "forecast_call": []}
        for sample in samples:
            started = time.perf_counter()
            rows = forecaster.reader.read(sample)
            read = time.perf_counter()
            batch, _ = forecaster.inputs(rows)
            built = time.perf_counter()
            with torch.inference_mode():
                forecaster.runner(batch)
            ran = time.perf_counter()
            forecaster.forecast([SeriesKey(store=s, dept=d) for s, d in sample], 8)
            parts["online_read"].append(read - started)
            parts["inputs"].append(built - read)
            parts["model"].append(ran - built)
            parts["forecast_call"].append(time.perf_counter() - ran)
        out[f"{n}_series"] = {k: round(float(np.median(v)) * 1000, 2) for k, v in parts.items()}
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _requests(url: str, bodies: list[dict], concurrency: int) -> tuple[list[float], float]:
    """Send every body; `concurrency` threads, one keep-alive connection each. Latencies and wall time."""
    latencies: list[float] = []
    lock = threading.Lock()
    chunks = [bodies[i::concurrency] for i in range(concurrency)]

    errors: list[str] = []

    def worker(chunk: list[dict]) -> None:
        try:
            send(chunk)
        except Exception as exc:  # a failed request fails the benchmark, not only its thread
            errors.append(repr(exc))

    def send(chunk: list[dict]) -> None:
        with httpx.Client(timeout=30) as client:
            for body in chunk:
                started = time.perf_counter()
                response = client.post(url, json=body)
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} worker(s) failed: {errors[0]}")
    return latencies, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=REAL_DATA)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/salesforecast-bench-serving"))
    parser.add_argument("--pg-dsn", default=DEFAULT_DSN)
    parser.add_argument("--model", type=Path, help="a trained best_model.pt to copy in")
    parser.add_argument(
        "--results", default="serving", help="results file name (e.g. serving_ensemble for another model)"
    )
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--batch-requests", type=int, default=200)
    args = parser.parse_args()

    os.environ["SALESFORECAST_PG_DSN"] = args.pg_dsn
    os.environ["SALESFORECAST_PROFILE"] = "postgres"
    os.environ["SALESFORECAST_WORKDIR"] = str(args.workdir)
    from salesforecast.config import Settings
    from salesforecast.data.ingest import load
    from salesforecast.features.build import build
    from salesforecast.featurestore.materialize import materialize
    from salesforecast.offline.store import write_feature_tables
    from salesforecast.serving.batch import score_all, series_keys
    from salesforecast.serving.predict import Forecaster, model_path
    from salesforecast.serving.runtime import CHUNK

    settings = Settings()
    figures: dict = {"workdir": str(args.workdir), "database": args.pg_dsn.rsplit("/", 1)[-1]}
    raw = load(args.data_dir)
    write_feature_tables(settings, build(raw), raw.sources)
    path = model_path(settings)
    if args.model:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.model, path)
        figures["model"] = f"copied from {args.model}"
    elif not path.is_file():
        from salesforecast.training.train import TrainConfig, run

        started = time.perf_counter()
        run(TrainConfig(epochs=1, windows_per_epoch=2048, max_val_windows=512, amp=False))
        figures["model"] = (
            f"default architecture, 1 epoch of 2,048 windows ({time.perf_counter() - started:.0f} s): "
            "for latency only"
        )
    else:
        figures["model"] = f"existing {path}"

    load_before = _load()
    full = materialize(settings, full=True)
    incremental = materialize(settings)
    figures["materialize"] = {
        "full_seconds": full["seconds"],
        "full_rows_written": full["rows_written"],
        "incremental_seconds": incremental["seconds"],
        "incremental_rows_written": incremental["rows_written"],
        "load_1m": [load_before, _load()],
    }
    print("materialize", figures["materialize"], flush=True)

    forecaster = Forecaster(settings)
    keys = series_keys(settings)
    figures["series"] = len(keys)
    figures["model_version"] = forecaster.model_version
    figures["runtime"] = {
        "traced": forecaster.runner.traced,
        "chunk_series": CHUNK,
        "workers": forecaster.runner.workers,
        "torch_threads": torch.get_num_threads(),
    }
    score_all(forecaster, keys[:500])  # warm up
    runs = []
    load_before = _load()
    for _ in range(3):
        started = time.perf_counter()
        scored = score_all(forecaster, keys)
        runs.append(time.perf_counter() - started)
    assert scored.groupby(["store", "dept"]).ngroups == len(keys)
    figures["batch_scoring_all_series"] = {
        "seconds_min": round(min(runs), 2),
        "seconds_runs": [round(r, 2) for r in runs],
        "batch_size": 500,
        "load_1m": [load_before, _load()],
    }
    print("batch scoring", figures["batch_scoring_all_series"], flush=True)
    figures["in_process_breakdown"] = _breakdown(forecaster, keys)
    print("in process", figures["in_process_breakdown"], flush=True)
    del forecaster

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "salesforecast.cli", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if server.poll() is not None:
                raise RuntimeError(f"server exited: {server.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        rng = random.Random(0)
        url = f"{base}/v1/forecast"

        def single(n: int) -> list[dict]:
            return [
                {"series": [dict(zip(("store", "dept"), rng.choice(keys), strict=True))], "horizon": 8}
                for _ in range(n)
            ]

        _requests(url, single(50), 1)  # warm up
        for concurrency in (1, 8):
            load_before = _load()
            latencies, wall = _requests(url, single(args.requests), concurrency)
            figures[f"single_series_concurrency_{concurrency}"] = {
                **_ms(latencies),
                "throughput_rps": round(len(latencies) / wall, 1),
                "load_1m": [load_before, _load()],
            }
            print(
                f"concurrency {concurrency}", figures[f"single_series_concurrency_{concurrency}"], flush=True
            )
        bodies = [
            {
                "series": [dict(zip(("store", "dept"), k, strict=True)) for k in rng.sample(keys, 100)],
                "horizon": 8,
            }
            for _ in range(args.batch_requests + 5)
        ]
        _requests(url, bodies[:5], 1)  # warm up the batch path (the model's worker threads)
        bodies = bodies[5:]
        load_before = _load()
        latencies, wall = _requests(url, bodies, 1)
        figures["batch_100_series"] = {**_ms(latencies), "load_1m": [load_before, _load()]}
        print("100-series batch", figures["batch_100_series"], flush=True)
    finally:
        server.terminate()
        server.wait(20)
    figures["targets"] = {
        "single_series_p99_ms_concurrency_1": 20,
        "batch_100_series_ms": 150,
        "all_series_seconds": 10,
    }
    print(write_results(args.results, figures))


if __name__ == "__main__":
    main()
