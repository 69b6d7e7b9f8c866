"""The quantile (pinball) loss, masked so unobserved weeks never count."""

from __future__ import annotations

import torch


def pinball(pred: torch.Tensor, target: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """Pinball loss per point and quantile: q*(y - p) if y >= p else (1 - q)*(p - y).

    `pred` is [..., Q], `target` is [...]; the result is [..., Q].
    """
    error = target.unsqueeze(-1) - pred
    return torch.maximum(quantiles * error, (quantiles - 1) * error)


def quantile_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    quantiles: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean pinball loss over quantiles and the observed (mask true) points of [B, H] targets.

    `weight` weighs whole windows ([B], e.g. by series scale) or single points ([B, H], e.g.
    holiday weeks); the caller normalises window weights to mean 1, so batch means stay
    comparable and can be summed as loss x points.
    """
    per_point = pinball(pred.float(), target, quantiles).mean(-1)  # [B, H]
    m = mask.to(per_point.dtype)
    if weight is not None:
        m = m * (weight.unsqueeze(-1) if weight.dim() == 1 else weight)
    return (per_point * m).sum() / mask.sum().clamp_min(1)


def holiday_weights(holiday: torch.Tensor, weight: float) -> torch.Tensor | None:
    """Per-point loss weights [B, H]: `weight` on holiday weeks, 1 elsewhere (None when 1)."""
    return None if weight == 1 else 1 + (weight - 1) * holiday.float()
