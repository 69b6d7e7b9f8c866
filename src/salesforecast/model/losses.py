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

    `weight` ([B]) weighs whole windows (e.g. by series scale); the caller normalises it to mean
    1, so batch means stay comparable and can be summed as loss x points.
    """
    per_point = pinball(pred.float(), target, quantiles).mean(-1)  # [B, H]
    m = mask.to(per_point.dtype)
    if weight is not None:
        m = m * weight.unsqueeze(-1)
    return (per_point * m).sum() / mask.sum().clamp_min(1)
