"""Start training with one command: N local workers through `torch.distributed.run` (torchrun).

Three cases, so `salesforecast train` runs unchanged everywhere:
- the environment already names this process's RANK and WORLD_SIZE (a Kubeflow PyTorchJob pod,
  or a process started by torchrun): train in this process as that rank;
- it holds torchrun's PET_* variables (a Kubeflow TrainJob): hand over to torchrun, which reads
  the node count, node rank and master address from them;
- otherwise (a laptop): torchrun --standalone with `workers` processes; one worker trains in
  this process, with no process group at all.
"""

from __future__ import annotations

import os
import time

from salesforecast.errors import SalesForecastError
from salesforecast.training.train import TrainConfig, run, to_argv

MODULE = "salesforecast.training.train"


def torchrun_args(config: TrainConfig, workers: int, env: dict[str, str]) -> list[str]:
    """torchrun's arguments: PET_* (TrainJob) topology when present, else a standalone local group."""
    if any(key.startswith("PET_") for key in env):
        topology = [] if "PET_NPROC_PER_NODE" in env else ["--nproc-per-node", str(workers)]
    else:
        topology = ["--standalone", "--nnodes", "1", "--nproc-per-node", str(workers)]
    return [*topology, "--module", MODULE, *to_argv(config)]


def launch(config: TrainConfig, workers: int = 1) -> int:
    """Train as `workers` local processes, or as the rank the environment names; 0 on success."""
    if workers < 1:
        raise SalesForecastError(f"--workers must be at least 1, got {workers}")
    threads = str(config.threads)
    # One thread per worker by default: two workers with two threads each on a 2-core box thrash.
    os.environ["OMP_NUM_THREADS"] = threads
    os.environ["MKL_NUM_THREADS"] = threads
    os.environ.setdefault("SALESFORECAST_LAUNCH_TIME", str(time.time()))
    env = dict(os.environ)
    in_group = "RANK" in env and "WORLD_SIZE" in env
    if in_group or (workers == 1 and not any(k.startswith("PET_") for k in env)):
        run(config)
        return 0

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(torchrun_args(config, workers, env))
    except ChildFailedError as exc:
        codes = sorted({failure.exitcode for failure in exc.failures.values()})
        raise SalesForecastError(
            f"training failed in {len(exc.failures)} of {workers} worker(s) (exit codes {codes}); "
            "the first error is printed above"
        ) from None
    return 0
