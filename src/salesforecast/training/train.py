"""Distributed (DDP) training of the TFT; one entry point for every launcher.

    python -m salesforecast.training.train [options]                  # one process
    torchrun --nproc-per-node 2 -m salesforecast.training.train ...     # N local workers
    salesforecast train --workers 2 ...                                 # the same, one command

Inside a Kubeflow PyTorchJob or TrainJob the job sets MASTER_ADDR, MASTER_PORT, WORLD_SIZE and
RANK (TrainJob: PET_* for torchrun), and `init_process_group` reads them: gloo on CPU, NCCL with
CUDA. Rank 0 reads the data and broadcasts the panel, so the feature store is read once; every
rank trains on its `DistributedSampler` share of a fresh random sample of windows each epoch.

Split, by date: training windows' target weeks end before the validation period (the last
`val_weeks` weeks before `cutoff`), validation windows' target weeks lie inside it, and nothing
on or after `cutoff` (the test period) is read at all.

With `refit`, the validation run only chooses the number of epochs E (early stopping) and is kept
under `artifacts/selection/`; a second run then trains from scratch on every window whose targets
lie before the cut-off, the validation weeks included, for exactly E epochs of the same schedule,
and that model is the one saved. The most recent weeks are the most informative ones (they hold
the last holiday season, and the only one whose sales 52 weeks earlier were observed), and the
test period still stays unread.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from salesforecast.config import Profile, Settings
from salesforecast.errors import SalesForecastError
from salesforecast.model import windows as W
from salesforecast.model.losses import holiday_weights, quantile_loss
from salesforecast.model.tft import BASELINES, TFT, TFTConfig, TFTEnsemble
from salesforecast.training import checkpoint as ckpt

DEFAULT_CUTOFF = "2012-02-03"  # first week of the test period: training and validation end before it


@dataclass
class TrainConfig:
    profile: str | None = None
    workdir: str | None = None
    frame_path: str | None = None  # a Parquet training frame instead of the feature store
    cutoff: str = DEFAULT_CUTOFF  # use only data dated before this
    val_weeks: int = 13
    sample_size: int | None = None  # rows, drawn as whole series
    # Defaults sized so the full-data run takes under 10 minutes with 2 workers on 2 cores.
    epochs: int = 20  # cosine decay over 20; early stopping (patience 4) ends most runs by 16
    windows_per_epoch: int | None = 24_576  # None: every training window each epoch
    max_val_windows: int | None = 8_192  # a fixed random subset, evaluated every epoch
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    patience: int = 4
    encoder_length: int | None = None  # None: the settings' (52)
    horizon: int | None = None  # None: the settings' (8)
    hidden_size: int = 64
    n_heads: int = 4
    lstm_layers: int = 2
    dropout: float = 0.1
    min_encoder_weeks: int = 8
    covariates: str = W.DEFAULT_COVARIATES  # store-week covariates fed to the model: none, all or a list
    season_window: int = 0  # k > 0: last year's weeks 52 +- 1..k earlier as inputs too (Preprocessing)
    baseline: str = "none"  # seasonal_naive: forecast offsets from the seasonal naive (TFTConfig)
    scale_weight: float = 0.0  # draw windows with probability ~ scale**scale_weight (1: sales units)
    holiday_weight: float = 1.0  # weight of holiday weeks in the loss (5: the competition's WMAE)
    refit: bool = False  # after early stopping picks E epochs, retrain on all weeks before the cut-off
    ensemble: int = 1  # K > 1: train K members with seeds seed..seed+K-1 and average their forecasts
    ema_decay: float = 0.0  # > 0: validate and keep an exponential moving average of the weights
    amp: bool = True
    threads: int = 1
    seed: int | None = None  # None: the settings' seed
    resume: bool = False


# A checkpoint only resumes a run that agrees on every field that changes the data, the model or
# the optimisation (all but these): a run of the same recipe would have made the same checkpoint.
NOT_RESUME_KEYS = ("profile", "workdir", "threads", "resume")
RESUME_KEYS = tuple(f.name for f in fields(TrainConfig) if f.name not in NOT_RESUME_KEYS)


def _value(kind: type, optional: bool):
    def parse(text: str) -> Any:
        return None if optional and text.lower() in {"none", "all"} else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def build_parser() -> argparse.ArgumentParser:
    """Options named after the TrainConfig fields; `none` (or `all`) sets an optional one to None."""
    p = argparse.ArgumentParser(prog="salesforecast.training.train", description=__doc__.splitlines()[0])
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "amp":
            p.add_argument("--no-amp", dest="amp", action="store_false", help="train in float32")
        elif f.name == "resume":
            p.add_argument(flag, action="store_true", help="continue from the last checkpoint")
        elif f.type in (bool, "bool"):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=getattr(defaults, f.name))
        else:
            kind = int if "int" in str(f.type) else float if "float" in str(f.type) else str
            p.add_argument(flag, type=_value(kind, "None" in str(f.type)), default=getattr(defaults, f.name))
    return p


def to_argv(config: TrainConfig) -> list[str]:
    """The command-line form of a config (what the launcher hands every worker): non-defaults only."""
    defaults = TrainConfig()
    argv: list[str] = []
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        if value == getattr(defaults, f.name):
            continue
        if f.name == "amp":
            argv.append("--no-amp")
        elif f.name == "resume":
            argv.append("--resume")
        elif isinstance(value, bool):
            argv.append(("--" if value else "--no-") + f.name.replace("_", "-"))
        else:
            argv += ["--" + f.name.replace("_", "-"), "none" if value is None else str(value)]
    return argv


# ----------------------------------------------------------------------------- distributed setup


@dataclass
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def tune_malloc() -> None:
    """Keep freed activation memory in the process (glibc): a step allocates and frees tensors of
    tens of MB, and returning them to the OS each time cost up to 40% extra (system) time in page
    faults in a trial. A no-op where glibc's mallopt is absent."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD: glibc's maximum
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
        libc.mallopt(-2, 256 << 20)  # M_TOP_PAD
    except (OSError, AttributeError):
        pass


def setup_distributed(threads: int) -> Dist:
    """Join the process group the launcher (torchrun, PyTorchJob, TrainJob) describes in the environment."""
    torch.set_num_threads(threads)
    if sys.platform == "linux":
        tune_malloc()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if rank != 0:
        warnings.filterwarnings("ignore")  # one voice: rank 0 reports
    return Dist(rank=rank, world=world, local_rank=local_rank, device=device)


def broadcast(value: Any, d: Dist) -> Any:
    """Rank 0's value on every rank; an exception on rank 0 is raised on every rank, not left to hang."""
    if d.world == 1:
        if isinstance(value, BaseException):
            raise value
        return value
    box = [value if d.main else None]
    dist.broadcast_object_list(box, src=0)
    if isinstance(box[0], BaseException):
        if d.main:
            raise box[0]
        raise SalesForecastError(f"rank 0 failed: {box[0]}")
    return box[0]


def all_sum(values: list[float], d: Dist) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=d.device if d.device.type == "cuda" else "cpu")
    if d.world > 1:
        dist.all_reduce(t)
    return t.tolist()


def autocast_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 where the hardware runs it natively (AMX/AVX-512-BF16 CPUs, recent GPUs), else fp16 on CUDA."""
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, hence the getattr
    native = any(getattr(torch.cpu, check, lambda: False)() for check in checks)
    return torch.bfloat16 if native else None


# ----------------------------------------------------------------------------- data


@dataclass
class Data:
    panel: W.Panel
    train: tuple[torch.Tensor, torch.Tensor]  # (series, decoder start) of every training window
    val: tuple[torch.Tensor, torch.Tensor]
    val_start: pd.Timestamp
    cutoff: pd.Timestamp
    rows: int


class WindowDataset(Dataset):
    """Windows as a map-style dataset; `__getitems__` cuts a whole batch with one gather."""

    def __init__(self, panel: W.Panel, series: torch.Tensor, start: torch.Tensor, L: int, H: int) -> None:
        self.panel, self.series, self.start, self.L, self.H = panel, series, start, L, H

    def __len__(self) -> int:
        return len(self.series)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return W.gather(self.panel, self.series[idx], self.start[idx], self.L, self.H)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])


def _batch_as_is(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch


def prepare_data(config: TrainConfig, settings: Settings, L: int, H: int, seed: int) -> Data:
    if config.min_encoder_weeks > L:
        raise SalesForecastError(
            f"--encoder-length {L}: a window needs {config.min_encoder_weeks} observed encoder weeks "
            f"(min_encoder_weeks), so the encoder must be at least that long"
        )
    if config.val_weeks < H:
        raise SalesForecastError(
            f"--val-weeks {config.val_weeks}: a validation window needs all {H} of its target weeks "
            f"inside the validation period, so it must be at least the horizon ({H})"
        )
    cutoff = pd.Timestamp(config.cutoff)
    if config.frame_path:
        try:
            frame = pd.read_parquet(config.frame_path)
        except (OSError, ValueError) as exc:
            raise SalesForecastError(f"{config.frame_path}: cannot read the training frame ({exc})") from None
        W.check_frame(frame, config.frame_path)
        frame = frame[W._dates(frame) < cutoff].reset_index(drop=True)
    else:
        frame = W.load_training_frame(settings, config.sample_size, end=cutoff, seed=seed)
    if frame.empty:
        raise SalesForecastError(f"no training data before the cut-off {cutoff.date()}")
    val_start = cutoff - config.val_weeks * W.WEEK
    prep = W.fit_preprocessing(
        frame, val_start, covariates=config.covariates, season_window=config.season_window
    )
    panel = W.build_panel(frame, prep)
    vs, end = panel.week(val_start), panel.week(cutoff)
    train = W.window_index(panel, L, H, 0, vs, config.min_encoder_weeks)
    val = W.window_index(panel, L, H, vs, end, config.min_encoder_weeks)
    if len(train[0]) == 0 or len(val[0]) == 0:
        raise SalesForecastError(
            f"no {'training' if len(train[0]) == 0 else 'validation'} windows: the data before "
            f"{cutoff.date()} span {len(panel.dates)} weeks, too few for {L} encoder weeks, a "
            f"{H}-week horizon and {config.val_weeks} validation weeks (try --val-weeks, --cutoff "
            "or a smaller encoder length)"
        )
    if config.max_val_windows and len(val[0]) > config.max_val_windows:
        g = torch.Generator().manual_seed(seed)
        keep = torch.randperm(len(val[0]), generator=g)[: config.max_val_windows].sort().values
        val = (val[0][keep], val[1][keep])
    W.fit_log_scale(panel, *train, L)
    return Data(panel=panel, train=train, val=val, val_start=val_start, cutoff=cutoff, rows=len(frame))


# ----------------------------------------------------------------------------- training


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _weights(scale: torch.Tensor, power: float, norm: float) -> torch.Tensor | None:
    """Validation weights matching the training draw: scale**power, normalised to mean 1."""
    return None if power == 0 else scale.float() ** power / norm


def draw_windows(weight: torch.Tensor | int, k: int, seed: int) -> torch.Tensor:
    """k distinct window indices: uniform (weight = the number of windows) or proportional to weight."""
    g = torch.Generator().manual_seed(seed)
    if isinstance(weight, int):
        return torch.randperm(weight, generator=g)[:k]
    return torch.multinomial(weight.double(), k, replacement=False, generator=g)


def lr_lambda(total_steps: int, warmup: int):
    """Linear warm-up, then cosine decay to 10% of the peak by the last planned step."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))

    return factor


@torch.no_grad()
def evaluate(
    model: TFT,
    data: Data,
    d: Dist,
    L: int,
    H: int,
    batch_size: int,
    amp: torch.dtype | None,
    power: float,
    weight_norm: float,
    holiday_weight: float = 1.0,
) -> dict[str, float]:
    """Validation metrics over every rank's share of the validation windows (summed across ranks).

    `loss`: mean pinball loss of the scaled target (as trained); `naive_loss`: the same for the
    seasonal-naive forecast on the same windows; `wmae`/`naive_wmae`: P50 error in sales units,
    holiday weeks weighted 5 (the competition's metric).
    """
    model.eval()
    series, start = data.val[0][d.rank :: d.world], data.val[1][d.rank :: d.world]
    q = torch.tensor(model.config.quantiles, device=d.device)
    sums = np.zeros(7)
    for lo in range(0, len(series), batch_size):
        b = _to(
            W.gather(data.panel, series[lo : lo + batch_size], start[lo : lo + batch_size], L, H), d.device
        )
        with torch.autocast(d.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            pred = model(b).float()
        n = b["mask"].sum()
        w = _weights(b["scale"], power, weight_norm)
        hol = holiday_weights(b["holiday"], holiday_weight)
        if hol is not None:
            w = hol if w is None else hol * w[:, None]
        naive = b["naive"].unsqueeze(-1).expand_as(pred)
        hw = (1 + 4 * b["holiday"].float()) * b["mask"]
        p50 = pred[..., len(model.config.quantiles) // 2]
        sums += [
            float(quantile_loss(pred, b["target"], b["mask"], q, w) * n),
            float(quantile_loss(naive, b["target"], b["mask"], q, w) * n),
            float(n),
            float(((p50 - b["target"]).abs() * b["scale"][:, None] * hw).sum()),
            float(((b["naive"] - b["target"]).abs() * b["scale"][:, None] * hw).sum()),
            float(hw.sum()),
            float(len(b["scale"])),
        ]
    loss, naive_loss, n, err, naive_err, hw, windows = all_sum(sums.tolist(), d)
    return {
        "val_loss": loss / max(n, 1),
        "val_naive_loss": naive_loss / max(n, 1),
        "val_wmae": err / max(hw, 1),
        "val_naive_wmae": naive_err / max(hw, 1),
        "val_windows": int(windows),
    }


def param_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for _, p in sorted(model.state_dict().items()):
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def run(config: TrainConfig) -> dict[str, Any]:
    """Train on this process's share; rank 0 writes the artefacts. Returns the run summary."""
    started = time.time()
    launched = float(os.environ.get("SALESFORECAST_LAUNCH_TIME", started))
    d = setup_distributed(config.threads)
    try:
        if config.ensemble > 1:
            return _ensemble(config, d, started, launched)
        return _model(config, d, started, launched)[0]
    finally:
        if d.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _settings(config: TrainConfig) -> Settings:
    overrides: dict[str, Any] = {}
    if config.profile:
        overrides["profile"] = Profile(config.profile)
    if config.workdir:
        overrides["workdir"] = Path(config.workdir)
    return Settings(**overrides)


def check_baseline(baseline: str) -> None:
    """A typo in --baseline is one clear line (the CLI calls this before launching any worker)."""
    if baseline not in BASELINES:
        raise SalesForecastError(f"--baseline {baseline!r}: expected one of {', '.join(BASELINES)}")


SELECTION = "selection"  # the refit's first run, which chooses the number of epochs


def _model(
    config: TrainConfig,
    d: Dist,
    started: float,
    launched: float,
    phase: str | None = None,
    data: Data | None = None,
) -> tuple[dict[str, Any], Data]:
    """One model: a training run, or with `refit` a selection run and then the refit."""
    if not config.refit:
        return _run(config, d, started, launched, phase=phase, data=data)
    inner = f"{phase}/{SELECTION}" if phase else SELECTION
    selection, data = _run(config, d, started, launched, phase=inner, data=data)
    return _run(config, d, started, launched, phase=phase, data=data, selection=selection)


def _ensemble(config: TrainConfig, d: Dist, started: float, launched: float) -> dict[str, Any]:
    """K members on the same data, seeds seed..seed+K-1, each under `artifacts/member-i/`; then the
    ensemble (their mean forecast) is validated on the same windows and saved as the model."""
    from rich.console import Console

    console = Console(quiet=not d.main, highlight=False)
    settings = _settings(config)
    seed = settings.seed if config.seed is None else config.seed
    members: list[dict[str, Any]] = []
    data: Data | None = None
    for i in range(config.ensemble):
        console.rule(f"ensemble member {i + 1}/{config.ensemble} (seed {seed + i})")
        summary, data = _model(replace(config, seed=seed + i), d, started, launched, f"member-{i + 1}", data)
        members.append(summary)
    broadcast(None, d)  # every member's best_model.pt is on disk before any rank reads it
    artifacts = settings.artifacts_dir
    loaded = [ckpt.load_model(Path(m["artifacts"]) / ckpt.BEST_MODEL) for m in members]
    ensemble = TFTEnsemble(loaded[0][0].config, len(loaded)).to(d.device)
    for member, (trained, _, _) in zip(ensemble.members, loaded, strict=True):
        member.load_state_dict(trained.state_dict())
    first = loaded[0][2]  # the first member's bundle: cut-off and dates are the same for all
    L, H = ensemble.config.encoder_length, ensemble.config.horizon
    amp = autocast_dtype(d.device, config.amp)
    metrics = evaluate(ensemble, data, d, L, H, config.batch_size, amp, 0.0, 1.0, config.holiday_weight)
    keep = (
        "best_epoch",
        "best_val_loss",
        "val_naive_loss",
        "best_val_wmae",
        "epochs_run",
        "wall_s",
        "artifacts",
    )
    summary = {
        "ensemble": config.ensemble,
        "members": [{k: m.get(k) for k in keep} | {"seed": seed + i} for i, m in enumerate(members)],
        # The ensemble's own validation figures (in-sample where the members were refitted).
        "best_val_loss": metrics["val_loss"],
        "val_naive_loss": metrics["val_naive_loss"],
        "best_val_wmae": metrics["val_wmae"],
        "val_naive_wmae": metrics["val_naive_wmae"],
        "best_epoch": [m["best_epoch"] for m in members],
        "epochs_run": sum(m["epochs_run"] for m in members),
        "ranks_in_sync": all(m["ranks_in_sync"] for m in members),
        "world_size": d.world,
        "amp": members[0]["amp"],
        "device": d.device.type,
        "rows": data.rows,
        "series": len(data.panel.keys),
        "train_windows": members[0]["train_windows"],
        "val_windows": len(data.val[0]),
        "wall_s": time.time() - started,
        "wall_s_since_launch": time.time() - launched,
        "config": asdict(config),
        "artifacts": str(artifacts),
    }
    if d.main:
        from salesforecast.offline.files import write_json

        extra = {k: first[k] for k in ("trained_until", "val_start", "cutoff") if k in first}
        extra |= {"epoch": summary["best_epoch"], "val_loss": metrics["val_loss"]}
        extra["train_config"] = asdict(config)
        ckpt.save_torch(artifacts / ckpt.BEST_MODEL, ckpt.model_bundle(ensemble, data.panel.prep, extra))
        ckpt.write_preprocessing(artifacts, data.panel.prep)
        log = [
            entry | {"member": i + 1}
            for i, m in enumerate(members)
            for entry in ckpt.read_log(Path(m["artifacts"]) / ckpt.TRAINING_LOG)
        ]
        ckpt.write_log(artifacts / ckpt.TRAINING_LOG, log)
        write_json(artifacts / ckpt.SUMMARY, summary)
        where = "in sample: the members were refitted on the validation weeks; " if config.refit else ""
        console.print(
            f"ensemble of {config.ensemble}: validation loss {metrics['val_loss']:.4f} ({where}members "
            + ", ".join(f"{m['best_val_loss']:.4f}" for m in members)
            + f"; seasonal naive {metrics['val_naive_loss']:.4f}); artefacts in {artifacts}; "
            f"{summary['wall_s_since_launch']:.0f} s"
        )
    return summary


def _run(
    config: TrainConfig,
    d: Dist,
    started: float,
    launched: float,
    phase: str | None = None,
    data: Data | None = None,
    selection: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Data]:
    """One training run. With `selection` (a finished selection run's summary) it is the refit:
    every window before the cut-off, exactly the selected number of epochs, the last one kept."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(quiet=not d.main, highlight=False)
    settings = _settings(config)
    L = config.encoder_length or settings.encoder_length
    H = config.horizon or settings.horizon
    seed = settings.seed if config.seed is None else config.seed
    if not 1 <= H <= W.SEASON - config.season_window:
        raise SalesForecastError(
            f"horizon {H} outside 1..{W.SEASON - config.season_window} weeks "
            f"(52 less the season window {config.season_window})"
        )
    check_baseline(config.baseline)
    artifacts = settings.artifacts_dir / phase if phase else settings.artifacts_dir
    amp = autocast_dtype(d.device, config.amp)

    if data is None:  # rank 0 reads the data once; everyone else receives the panel
        loaded: Data | BaseException | None = None
        if d.main:
            console.print(
                f"reading training data (cut-off {config.cutoff}, sample {config.sample_size or 'all'})"
            )
            try:
                loaded = prepare_data(config, settings, L, H, seed)
            except Exception as exc:
                loaded = exc
        data = broadcast(loaded, d)
    data_s = time.time() - started
    prep = data.panel.prep
    refit_epochs = int(selection["best_epoch"]) if selection else None
    fit_data = data
    if refit_epochs:  # the validation weeks become training weeks; the scalers stay as selected
        everything = W.window_index(
            data.panel, L, H, 0, data.panel.week(data.cutoff), config.min_encoder_weeks
        )
        fit_data = replace(data, train=everything)

    torch.manual_seed(seed)
    model_config = TFTConfig(
        **prep.model_inputs(),
        encoder_length=L,
        horizon=H,
        hidden_size=config.hidden_size,
        n_heads=config.n_heads,
        lstm_layers=config.lstm_layers,
        dropout=config.dropout,
        baseline=config.baseline,
    )
    model = TFT(model_config).to(d.device)
    # Every rank updates its average from the same synchronised weights, so the averages agree too.
    ema = (
        torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema_decay)
        )
        if config.ema_decay
        else None
    )
    kept = ema.module if ema is not None else model  # what is validated and saved
    quantiles = torch.tensor(model_config.quantiles, device=d.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(d.device.type, enabled=amp is torch.float16)

    n_train = len(fit_data.train[0])
    per_epoch = n_train if config.windows_per_epoch is None else min(config.windows_per_epoch, n_train)
    steps_per_epoch = math.ceil(math.ceil(per_epoch / d.world) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs  # a refit stops early on the same schedule
    epochs = refit_epochs or config.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(total_steps, warmup=max(1, min(200, total_steps // 20)))
    )

    # Resume: rank 0 reads the last checkpoint, every rank loads it.
    state = {"epoch": 0, "best_val": math.inf, "best_epoch": 0, "bad_epochs": 0}
    log: list[dict[str, Any]] = []
    resumed_from = None
    if config.resume:
        saved: Any = None
        if d.main:
            path = artifacts / ckpt.LAST_CHECKPOINT
            try:
                saved = ckpt.load_torch(path) if path.is_file() else None
            except Exception as exc:
                saved = exc
        saved = broadcast(saved, d)
        if saved is None:
            console.print(f"no checkpoint in {artifacts}: starting from scratch")
        else:
            mine = {k: getattr(config, k) for k in RESUME_KEYS} | {"phase_epochs": epochs}
            theirs = saved["resume_keys"]
            differ = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
            if differ or saved["model_config"] != model_config.to_dict():
                what = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in differ.items()) or "model inputs differ"
                raise SalesForecastError(
                    f"{artifacts / ckpt.LAST_CHECKPOINT} comes from a different run ({what}); "
                    "run without --resume to start over"
                )
            model.load_state_dict(saved["model_state"])
            optimizer.load_state_dict(saved["optimizer"])
            schedule.load_state_dict(saved["schedule"])
            scaler.load_state_dict(saved["grad_scaler"])
            if ema is not None:
                ema.load_state_dict(saved["ema_state"])
            state = saved["state"]
            log = [e for e in ckpt.read_log(artifacts / ckpt.TRAINING_LOG) if e["epoch"] <= state["epoch"]]
            resumed_from = state["epoch"]
            console.print(
                f"resuming after epoch {state['epoch']} (best validation loss {state['best_val']:.4f})"
            )

    ddp = DistributedDataParallel(model) if d.world > 1 else model
    if d.main:
        ckpt.write_preprocessing(artifacts, prep)
    train_weight: torch.Tensor | int = n_train
    if config.scale_weight:
        train_weight = W.window_scale(data.panel, *fit_data.train, L) ** config.scale_weight
    val_scale = W.window_scale(data.panel, *data.val, L)
    weight_norm = float((val_scale**config.scale_weight).mean()) if config.scale_weight else 1.0
    weighting = (config.scale_weight, weight_norm, config.holiday_weight)
    dataset = WindowDataset(data.panel, *fit_data.train, L, H)
    if refit_epochs:
        console.print(
            f"refit: the selection run's best epoch was {refit_epochs} (validation loss "
            f"{selection['best_val_loss']:.4f}); training again on every week before {data.cutoff.date()} "
            f"for {refit_epochs} epoch(s); the validation figures below are in-sample"
        )
    last_train = data.cutoff if refit_epochs else data.val_start
    console.print(
        f"{data.rows:,} rows, {len(data.panel.keys):,} series, {len(data.panel.dates)} weeks "
        f"({data.panel.dates[0].date()}..{data.panel.dates[-1].date()}); {n_train:,} training windows "
        f"(targets before {last_train.date()}), {len(data.val[0]):,} validation windows; "
        f"{per_epoch:,} windows per epoch on {d.world} worker(s) x {config.threads} thread(s), "
        f"{'amp ' + str(amp).replace('torch.', '') if amp else 'float32'}, {d.device.type}"
    )

    stopped_early = False
    last_epoch = state["epoch"]
    for epoch in range(state["epoch"] + 1, epochs + 1):
        epoch_started = time.time()
        ddp.train()
        # The same random sample of windows on every rank; the sampler splits it between ranks.
        # Seeding every epoch afresh makes a resumed run draw what an uninterrupted one would.
        pick = draw_windows(train_weight, per_epoch, seed * 100_003 + epoch)
        torch.manual_seed(seed * 100_003 + epoch * 101 + d.rank)  # dropout
        subset = torch.utils.data.Subset(dataset, pick.tolist())  # batched: Subset forwards __getitems__
        sampler = DistributedSampler(subset, num_replicas=d.world, rank=d.rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        loader = DataLoader(subset, batch_size=config.batch_size, sampler=sampler, collate_fn=_batch_as_is)
        loss_sum, points, samples = 0.0, 0.0, 0
        with Progress(
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeElapsedColumn(),
            console=console,
            disable=not d.main,
            transient=True,
            refresh_per_second=2,  # the refresh thread competes with the workers for the cores
        ) as progress:
            task = progress.add_task("train", total=len(loader), loss=float("nan"))
            for batch in loader:
                batch = _to(batch, d.device)
                with torch.autocast(d.device.type, dtype=amp or torch.float32, enabled=amp is not None):
                    pred = ddp(batch)
                weight = holiday_weights(batch["holiday"], config.holiday_weight)
                loss = quantile_loss(pred, batch["target"], batch["mask"], quantiles, weight)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                schedule.step()
                if ema is not None:
                    ema.update_parameters(model)
                n = float(batch["mask"].sum())
                loss_sum += float(loss.detach()) * n
                points += n
                samples += len(batch["scale"])
                progress.update(task, advance=1, loss=loss_sum / max(points, 1))
        train_loss_sum, train_points, total_samples = all_sum([loss_sum, points, samples], d)
        train_s = time.time() - epoch_started
        metrics = evaluate(kept, data, d, L, H, config.batch_size, amp, *weighting)
        if ema is not None:  # the raw weights' validation loss too, to show what the average buys
            raw = evaluate(model, data, d, L, H, config.batch_size, amp, *weighting)
            metrics |= {"val_loss_raw": raw["val_loss"], "val_wmae_raw": raw["val_wmae"]}
        # A refit keeps its last epoch: its validation weeks are training weeks now.
        improved = bool(refit_epochs) or metrics["val_loss"] < state["best_val"] - 1e-6
        if improved:
            state.update(best_val=metrics["val_loss"], best_epoch=epoch, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = last_epoch = epoch
        entry = {
            "epoch": epoch,
            "train_loss": train_loss_sum / max(train_points, 1),
            **metrics,
            "lr": optimizer.param_groups[0]["lr"],
            "samples": int(total_samples),
            "samples_per_s": total_samples / max(train_s, 1e-9),
            "train_s": train_s,
            "epoch_s": time.time() - epoch_started,
            "wall_s": time.time() - started,
            "best": improved,
        }
        log.append(entry)
        if d.main:
            extra = {
                "epoch": epoch,
                # A refit's own validation loss is in-sample; the selection run's is the honest one.
                "val_loss": selection["best_val_loss"] if selection else metrics["val_loss"],
                "val_loss_in_sample": metrics["val_loss"] if selection else None,
                "train_config": asdict(config),
                "trained_until": str((data.cutoff - W.WEEK).date()),
                "val_start": str(data.val_start.date()),
                "cutoff": str(data.cutoff.date()),
            }
            if improved:
                ckpt.save_torch(artifacts / ckpt.BEST_MODEL, ckpt.model_bundle(kept, prep, extra))
            ckpt.save_torch(
                artifacts / ckpt.LAST_CHECKPOINT,
                {
                    "model_state": model.state_dict(),
                    "model_config": model_config.to_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "grad_scaler": scaler.state_dict(),
                    "ema_state": ema.state_dict() if ema is not None else None,
                    "state": dict(state),
                    "resume_keys": {k: getattr(config, k) for k in RESUME_KEYS} | {"phase_epochs": epochs},
                },
            )
            ckpt.write_log(artifacts / ckpt.TRAINING_LOG, log)
        console.print(
            f"epoch {epoch}: train {entry['train_loss']:.4f}  val {metrics['val_loss']:.4f} "
            f"(seasonal naive {metrics['val_naive_loss']:.4f})  val WMAE {metrics['val_wmae']:,.0f} "
            f"(seasonal naive {metrics['val_naive_wmae']:,.0f})  {entry['samples_per_s']:,.0f} samples/s  "
            f"{entry['epoch_s']:.1f} s{'  *' if improved else ''}"
        )
        if state["bad_epochs"] >= config.patience:
            stopped_early = True
            console.print(f"early stop: no improvement for {config.patience} epochs")
            break

    if not state["best_epoch"]:
        raise SalesForecastError(
            f"no epoch of {epochs} reached a finite validation loss (training diverged: the loss is "
            f"NaN or inf), so no model was saved in {artifacts}; try a lower --lr (now {config.lr})"
        )
    digests = [param_digest(model)]
    if d.world > 1:
        gathered: list[Any] = [None] * d.world
        dist.all_gather_object(gathered, digests[0])
        digests = gathered
    best = next((e for e in log if e["epoch"] == state["best_epoch"]), {})
    summary = {
        "best_epoch": state["best_epoch"],
        "best_val_loss": state["best_val"],
        "val_naive_loss": best.get("val_naive_loss"),
        "best_val_wmae": best.get("val_wmae"),
        "val_naive_wmae": best.get("val_naive_wmae"),
        "epochs_run": last_epoch,
        "resumed_from": resumed_from,
        "stopped_early": stopped_early,
        "world_size": d.world,
        "threads": config.threads,
        "amp": str(amp).replace("torch.", "") if amp else None,
        "device": d.device.type,
        "rows": data.rows,
        "series": len(data.panel.keys),
        "train_windows": n_train,
        "val_windows": len(data.val[0]),
        "windows_per_epoch": per_epoch,
        "data_s": data_s,
        "wall_s": time.time() - started,
        "wall_s_since_launch": time.time() - launched,
        "mean_samples_per_s": float(np.mean([e["samples_per_s"] for e in log])) if log else None,
        "param_digests": digests,
        "ranks_in_sync": len(set(digests)) == 1,
        "config": asdict(config),
        "artifacts": str(artifacts),
    }
    if selection:
        # Validation figures that were not trained on are the selection run's.
        keep = ("best_epoch", "best_val_loss", "val_naive_loss", "best_val_wmae", "val_naive_wmae")
        summary |= {k: selection[k] for k in keep}
        summary["refit"] = {
            "epochs": refit_epochs,
            "train_windows": n_train,
            "last_val_loss_in_sample": log[-1]["val_loss"] if log else None,
            "selection": {k: selection[k] for k in (*keep, "epochs_run", "wall_s", "artifacts")},
        }
    if d.main:
        from salesforecast.offline.files import write_json

        write_json(artifacts / ckpt.SUMMARY, summary)
        if selection:
            console.print(
                f"refit for {refit_epochs} epoch(s) on every week before {data.cutoff.date()}; the "
                f"selection run's validation loss {summary['best_val_loss']:.4f} (seasonal naive "
                f"{summary['val_naive_loss']:.4f}); artefacts in {artifacts}; "
                f"{summary['wall_s_since_launch']:.0f} s"
            )
        else:
            console.print(
                f"best epoch {state['best_epoch']}: validation loss {state['best_val']:.4f} "
                f"(seasonal naive {summary['val_naive_loss']:.4f}); artefacts in {artifacts}; "
                f"{summary['wall_s_since_launch']:.0f} s"
            )
    return summary, data


def main(argv: list[str] | None = None) -> int:
    config = TrainConfig(**vars(build_parser().parse_args(argv)))
    try:
        run(config)
    except SalesForecastError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
