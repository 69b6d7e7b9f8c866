"""What the TFT looks at: mean variable-selection weights and mean attention over encoder weeks."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from salesforecast.model.tft import TFT
from salesforecast.model.windows import Panel, gather


def variable_names(inputs: dict[str, Any]) -> dict[str, list[str]]:
    """Input names in the order the model embeds them: categoricals first, then reals."""
    static = [*inputs["static_categoricals"], *inputs["static_reals"]]
    known = [*inputs["known_categoricals"], *inputs["known_reals"]]
    return {"static": static, "encoder": [*known, *inputs["observed_reals"]], "decoder": known}


@torch.no_grad()
def interpretation(model: TFT, panel: Panel, until: pd.Timestamp, max_series: int = 1024) -> dict[str, Any]:
    """Averages over windows whose decoder starts the week after `until` (data the model was fit on)."""
    L, H = model.config.encoder_length, model.config.horizon
    start = min(panel.week(until + pd.Timedelta(days=7)), len(panel.dates) - H)
    seen = panel.observed[:, max(0, start - L) : start].any(1)
    series = torch.nonzero(seen).flatten()[:max_series]
    batch = gather(panel, series, torch.full_like(series, start), L, H)
    model.eval()
    _, weights = model(batch, return_weights=True)
    names = variable_names(model.config.to_dict())
    importance = {}
    for group in ("static", "encoder", "decoder"):
        w = weights[group].float()
        mean = w.reshape(-1, w.shape[-1]).mean(0).tolist()
        importance[group] = dict(zip(names[group], mean, strict=True))
    attention = weights["attention"].float().mean(dim=(0, 1))[:L]  # decoder weeks -> encoder weeks
    return {"variable_importance": importance, "attention": attention.tolist()}
