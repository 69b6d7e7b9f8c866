"""The TFT itself: shapes, a causal decoder, the quantile loss, sorted quantiles, and that it learns."""

from __future__ import annotations

import pytest
import torch

from salesforecast.model.losses import holiday_weights, pinball, quantile_loss
from salesforecast.model.tft import TFT, TFTConfig

L, H, B = 6, 4, 5


def tiny_config(**overrides) -> TFTConfig:
    values = {
        "static_categoricals": {"store": 4, "dept": 3},
        "static_reals": ["size"],
        "known_categoricals": {"holiday": 3},
        "known_reals": ["week_sin", "season"],
        "observed_reals": ["target", "lag"],
        "encoder_length": L,
        "horizon": H,
        "hidden_size": 16,
        "variable_size": 8,
        "n_heads": 4,
        "dropout": 0.1,
    }
    return TFTConfig(**(values | overrides))


def tiny_batch(b: int = B, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "static_cat": torch.stack([torch.randint(0, n, (b,), generator=g) for n in (4, 3)], 1),
        "static_real": torch.randn(b, 1, generator=g),
        "known_cat": torch.randint(0, 3, (b, L + H, 1), generator=g),
        "known_real": torch.randn(b, L + H, 2, generator=g),
        "observed_real": torch.randn(b, L, 2, generator=g),
    }


def test_output_and_interpretation_shapes():
    torch.manual_seed(0)
    model = TFT(tiny_config())
    pred, weights = model(tiny_batch(), return_weights=True)
    assert pred.shape == (B, H, 3)
    assert weights["static"].shape == (B, 3)  # store, dept, size
    assert weights["encoder"].shape == (B, L, 5)  # holiday, 2 known reals, 2 observed reals
    assert weights["decoder"].shape == (B, H, 3)  # known inputs only
    assert weights["attention"].shape == (B, H, L + H)
    for w in (weights["static"], weights["encoder"], weights["decoder"], weights["attention"]):
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))


def test_changing_decoder_input_at_step_k_changes_no_earlier_output():
    torch.manual_seed(0)
    model = TFT(tiny_config()).eval()
    batch = tiny_batch()
    with torch.no_grad():
        base = model(batch)
        for k in range(H):
            changed = {name: t.clone() for name, t in batch.items()}
            changed["known_real"][:, L + k] += 5.0
            changed["known_cat"][:, L + k] = (changed["known_cat"][:, L + k] + 1) % 3
            out = model(changed)
            assert torch.equal(out[:, :k], base[:, :k]), f"step {k} leaked into earlier steps"
            assert not torch.allclose(out[:, k], base[:, k]), f"step {k}'s own input had no effect"


def test_attention_never_looks_ahead():
    torch.manual_seed(0)
    model = TFT(tiny_config()).eval()
    with torch.no_grad():
        _, weights = model(tiny_batch(), return_weights=True)
    attention = weights["attention"]  # [B, H, L + H]
    for k in range(H):
        assert torch.all(attention[:, k, L + k + 1 :] == 0)
        assert torch.all(attention[:, k, : L + k + 1] > 0)


def test_pinball_and_quantile_loss_on_hand_computed_values():
    q = torch.tensor([0.1, 0.5, 0.9])
    # y = 10 against forecasts 8, 10, 13: errors +2, 0, -3.
    # pinball: 0.1 * 2 = 0.2; 0; (1 - 0.9) * 3 = 0.3  -> mean over quantiles 0.5 / 3.
    pred = torch.tensor([[[8.0, 10.0, 13.0], [0.0, 0.0, 0.0]]])
    target = torch.tensor([[10.0, 4.0]])
    torch.testing.assert_close(pinball(pred[0, 0], target[0, 0], q), torch.tensor([0.2, 0.0, 0.3]))
    # Second point y = 4 against 0, 0, 0: 0.4, 2.0, 3.6 -> mean 2.0.
    both = quantile_loss(pred, target, torch.tensor([[True, True]]), q)
    torch.testing.assert_close(both, torch.tensor((0.5 / 3 + 2.0) / 2))
    # A masked (unobserved) point does not count.
    first_only = quantile_loss(pred, target, torch.tensor([[True, False]]), q)
    torch.testing.assert_close(first_only, torch.tensor(0.5 / 3))
    # Window weights multiply each window's points.
    pred2, target2 = pred.expand(2, -1, -1), target.expand(2, -1)
    mask = torch.tensor([[True, False], [False, True]])
    weighted = quantile_loss(pred2, target2, mask, q, weight=torch.tensor([0.5, 1.5]))
    torch.testing.assert_close(weighted, torch.tensor((0.5 * 0.5 / 3 + 1.5 * 2.0) / 2))
    # Point weights: holiday weeks weigh as in the WMAE (--holiday-weight 5).
    points = holiday_weights(torch.tensor([[False, True]]), 5.0)
    torch.testing.assert_close(points, torch.tensor([[1.0, 5.0]]))
    assert holiday_weights(torch.tensor([[False, True]]), 1.0) is None
    holiday = quantile_loss(pred, target, torch.tensor([[True, True]]), q, weight=points)
    torch.testing.assert_close(holiday, torch.tensor((0.5 / 3 + 5 * 2.0) / 2))


def test_predicted_quantiles_do_not_cross():
    torch.manual_seed(3)
    model = TFT(tiny_config()).eval()
    batch = tiny_batch(64, seed=1)
    raw = model(batch).detach()
    sorted_ = model.predict(batch)
    assert torch.all(sorted_[..., :-1] <= sorted_[..., 1:])
    torch.testing.assert_close(sorted_, raw.sort(-1).values)


def test_tiny_overfit_loss_falls_by_90_percent():
    torch.manual_seed(0)
    model = TFT(tiny_config(dropout=0.0))
    batch = tiny_batch(16, seed=2)
    # A learnable target: the mean observed input plus the week's known input.
    target = batch["observed_real"][..., 0].mean(1, keepdim=True) + batch["known_real"][:, L:, 0]
    mask = torch.ones_like(target, dtype=torch.bool)
    q = torch.tensor(model.config.quantiles)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        loss = quantile_loss(model(batch), target, mask, q)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses[-10:]) < 0.1 * losses[0], (losses[0], losses[-10:])


def test_hidden_size_must_split_into_heads():
    with pytest.raises(AssertionError, match="divisible"):
        TFT(tiny_config(hidden_size=18))


def test_forecasts_keep_float32_precision_under_bf16_autocast():
    torch.manual_seed(0)
    model = TFT(tiny_config()).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        pred = model(tiny_batch())
    assert pred.dtype == torch.float32


def test_an_ensemble_averages_its_members_and_traces_exactly():
    from salesforecast.model.tft import TFTEnsemble
    from salesforecast.serving.runtime import ModelRunner

    torch.manual_seed(0)
    ensemble = TFTEnsemble(tiny_config(hidden_size=32, variable_size=16), 3).eval()
    batch = tiny_batch(b=8)  # one serving chunk: the same batch shape as eager
    with torch.no_grad():
        outs = [member(batch, return_weights=True) for member in ensemble.members]
        pred, weights = ensemble(batch, return_weights=True)
    torch.testing.assert_close(pred, torch.stack([o[0] for o in outs]).mean(0))
    torch.testing.assert_close(weights["encoder"], torch.stack([o[1]["encoder"] for o in outs]).mean(0))
    runner = ModelRunner(ensemble, workers=1)  # serving's traced graph, in chunks
    assert runner.traced  # frozen, or where freezing changes the last bit (Intel AMX), the plain trace
    with torch.inference_mode():
        assert torch.equal(runner(batch), ensemble.predict(batch))
