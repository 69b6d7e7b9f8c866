"""Training artefacts, each written to a temporary file and renamed: a killed run never leaves half a file.

- `best_model.pt`: weights of the best epoch plus everything needed to predict (model config,
  input lists, vocabularies, scaler parameters, the training configuration and cut-off);
- `scaler.pkl`: the input preprocessing (transforms, means, standard deviations, vocabularies);
- `target_scaler.pkl`: how the target is scaled per window;
- `last_checkpoint.pt`: model, optimiser, schedule and early-stopping state, for `--resume`;
- `training_log.jsonl`: one line per epoch.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch

from salesforecast.errors import SalesForecastError
from salesforecast.model.tft import TFT, TFTConfig, TFTEnsemble
from salesforecast.model.windows import Preprocessing
from salesforecast.offline.files import atomic_write

BEST_MODEL = "best_model.pt"
LAST_CHECKPOINT = "last_checkpoint.pt"
SCALER = "scaler.pkl"
TARGET_SCALER = "target_scaler.pkl"
TRAINING_LOG = "training_log.jsonl"
SUMMARY = "training_summary.json"


def save_torch(path: Path, payload: dict[str, Any]) -> Path:
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def save_pickle(path: Path, payload: Any) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(pickle.dumps(payload)))


def load_torch(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise SalesForecastError(f"{path}: not found") from None
    except Exception as exc:
        raise SalesForecastError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None


def write_preprocessing(artifacts: Path, prep: Preprocessing) -> None:
    save_pickle(artifacts / SCALER, prep.to_dict())
    save_pickle(artifacts / TARGET_SCALER, prep.target_scaler())


def model_bundle(model: torch.nn.Module, prep: Preprocessing, extra: dict[str, Any]) -> dict[str, Any]:
    """Everything `load_model` needs to rebuild the model and its inputs."""
    tft: TFT | TFTEnsemble = getattr(model, "module", model)
    return {
        "model_state": {k: v.detach().cpu() for k, v in tft.state_dict().items()},
        "model_config": tft.config.to_dict(),
        "members": len(tft.members) if isinstance(tft, TFTEnsemble) else None,
        "preprocessing": prep.to_dict(),
        "target_scaler": prep.target_scaler(),
        **extra,
    }


def load_model(path: Path) -> tuple[TFT | TFTEnsemble, Preprocessing, dict[str, Any]]:
    """Rebuild a trained TFT or ensemble (in eval mode) with its preprocessing from `best_model.pt`."""
    bundle = load_torch(path)
    missing = {"model_state", "model_config", "preprocessing"} - set(bundle)
    if missing:
        raise SalesForecastError(f"{path}: not a model bundle (lacks {sorted(missing)})")
    config = dict(bundle["model_config"])
    config["quantiles"] = tuple(config["quantiles"])
    members = bundle.get("members")
    model = TFTEnsemble(TFTConfig(**config), members) if members else TFT(TFTConfig(**config))
    prep = Preprocessing.from_dict(bundle["preprocessing"])
    expected = prep.model_inputs()
    differ = [k for k, v in expected.items() if config.get(k) != v]
    if differ:
        raise SalesForecastError(
            f"{path}: the model was trained with other inputs than this version makes ({', '.join(differ)}); "
            "retrain it with `salesforecast train`"
        )
    model.load_state_dict(bundle["model_state"])
    model.eval()
    return model, prep, bundle


def write_log(path: Path, entries: list[dict[str, Any]]) -> None:
    """Rewrite the whole log atomically: cheap (one line per epoch) and never torn."""
    text = "".join(json.dumps(entry) + "\n" for entry in entries)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
