"""Temporal Fusion Transformer (Lim et al., 2019, arXiv:1912.09363) in plain PyTorch.

Reads top to bottom: building blocks (gated linear unit, gated residual network, variable
selection), then the model. Shapes: B windows, L encoder weeks, H decoder weeks, T = L + H,
d hidden size, Q quantiles.

Inputs (a dict of tensors, see `TFT.forward`):
  static_cat   [B, Sc]      long   store, dept, store type (vocabulary indices, 0 = unknown)
  static_real  [B, Sr]      float  store size, the window's sales scale, ...
  known_cat    [B, T, Kc]   long   which holiday
  known_real   [B, T, Kr]   float  calendar, weeks to next holiday, sales 52 weeks earlier, ...
  observed_real[B, L, O]    float  the scaled target, lags, rolling statistics, markdowns, economy

The decoder sees only the known inputs; past-only inputs feed the encoder alone, and the
attention mask stops decoder week k from looking at later weeks, so no future leaks in.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TFTConfig:
    static_categoricals: dict[str, int] = field(default_factory=dict)  # name -> vocabulary size
    static_reals: list[str] = field(default_factory=list)
    known_categoricals: dict[str, int] = field(default_factory=dict)
    known_reals: list[str] = field(default_factory=list)
    observed_reals: list[str] = field(default_factory=list)
    encoder_length: int = 52
    horizon: int = 8
    hidden_size: int = 64
    variable_size: int = 16  # each input's embedding; small, as the per-variable GRNs dominate the cost
    n_heads: int = 4
    lstm_layers: int = 2
    dropout: float = 0.1
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    # "seasonal_naive": the quantiles are offsets from the seasonal-naive forecast read from the
    # inputs (sales 52 weeks earlier, else the last observed week), so an untrained or data-poor
    # model starts at that forecast rather than at zero. "none": the quantiles directly.
    baseline: str = "none"

    def to_dict(self) -> dict:
        return asdict(self)


BASELINES = ("none", "seasonal_naive")
SEASONAL_NAIVE_INPUTS = ("sales_52_weeks_ago", "observed_52_weeks_ago", "target", "is_observed")

# ----------------------------------------------------------------------------- building blocks


class MultiLinear(nn.Module):
    """n independent linear layers applied to [n, M, d_in] at once: one batched matmul, not n."""

    def __init__(self, n: int, d_in: int, d_out: int, bias: bool = True) -> None:
        super().__init__()
        bound = 1 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(n, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, d_out).uniform_(-bound, bound)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.bmm(x, self.weight)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


class GatedResidualNetwork(nn.Module):
    """GRN(a, c) = LayerNorm(skip(a) + GLU(W1 ELU(W2 a + W3 c))), eq. (2)-(5) of the paper.

    With `n_vars` it is n_vars independent GRNs over [n_vars, M, d_in] (the per-variable GRNs
    of variable selection); the layer norm is shared between them.
    """

    def __init__(
        self,
        d_in: int,
        d_hidden: int,
        d_out: int,
        dropout: float,
        d_context: int | None = None,
        n_vars: int | None = None,
    ) -> None:
        super().__init__()

        def linear(i: int, o: int) -> nn.Module:
            return MultiLinear(n_vars, i, o) if n_vars else nn.Linear(i, o)

        self.skip = linear(d_in, d_out) if d_in != d_out else nn.Identity()
        self.fc_in = linear(d_in, d_hidden)
        self.fc_context = nn.Linear(d_context, d_hidden, bias=False) if d_context else None
        self.fc_hidden = linear(d_hidden, d_hidden)
        self.dropout = nn.Dropout(dropout)
        self.gate = linear(d_hidden, 2 * d_out)
        self.norm = nn.LayerNorm(d_out)

    def forward(self, a: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = self.fc_in(a)
        if self.fc_context is not None and context is not None:
            c = self.fc_context(context)
            while c.dim() < h.dim():  # a static context [B, d] broadcasts over time
                c = c.unsqueeze(-2)
            h = h + c
        h = self.fc_hidden(F.elu(h))
        return self.norm(self.skip(a) + F.glu(self.gate(self.dropout(h)), dim=-1))


class GateAddNorm(nn.Module):
    """LayerNorm(skip + GLU(x)): the gated skip connections around LSTM, attention and output."""

    def __init__(self, d: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.gate = nn.Linear(d, 2 * d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.norm(skip + F.glu(self.gate(self.dropout(x)), dim=-1))


class VariableSelection(nn.Module):
    """Weigh n embedded variables [..., n, e] by softmax weights from a GRN of all of them, eq. (6)-(8).

    Each variable goes through its own GRN from its e-dim embedding to d dimensions (hidden
    width e, as in pytorch-forecasting): on CPU these per-variable GRNs are most of the model's
    cost, so they are kept narrow.
    """

    def __init__(self, n_vars: int, e: int, d: int, dropout: float, d_context: int | None = None) -> None:
        super().__init__()
        self.weights = GatedResidualNetwork(n_vars * e, d, n_vars, dropout, d_context)
        self.per_var = GatedResidualNetwork(e, e, d, dropout, n_vars=n_vars)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w = torch.softmax(self.weights(x.flatten(-2), context), dim=-1)  # [..., n]
        lead, (n, e) = x.shape[:-2], x.shape[-2:]
        per_var = self.per_var(x.reshape(-1, n, e).transpose(0, 1))  # [n, M, d], variables first
        out = (per_var * w.reshape(-1, n).T.unsqueeze(-1)).sum(0)  # [M, d]
        return out.reshape(*lead, -1), w


class RealEmbedding(nn.Module):
    """Each of n real inputs [..., n] gets its own linear map to d dimensions: [..., n, d]."""

    def __init__(self, n: int, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n, d) * 0.1)
        self.bias = nn.Parameter(torch.zeros(n, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-1) * self.weight + self.bias


class CategoricalEmbedding(nn.Module):
    """One embedding table per categorical input: [..., n] long -> [..., n, d]."""

    def __init__(self, cardinalities: list[int], d: int) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(c, d) for c in cardinalities)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([table(x[..., i]) for i, table in enumerate(self.tables)], dim=-2)


def embed(cat: CategoricalEmbedding | None, real: RealEmbedding | None, x_cat, x_real) -> torch.Tensor:
    parts = [cat(x_cat)] if cat is not None else []
    parts += [real(x_real)] if real is not None else []
    return torch.cat(parts, dim=-2)


class InterpretableMultiHeadAttention(nn.Module):
    """Heads have their own queries and keys but share one value projection; their outputs are
    averaged, so the mean attention pattern is directly readable, eq. (13)-(16)."""

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        assert d % n_heads == 0, "hidden size must be divisible by the number of heads"
        self.n_heads, self.d_head = n_heads, d // n_heads
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, self.d_head)
        self.out = nn.Linear(self.d_head, d)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query [B, H, d] (decoder weeks), key [B, T, d] (all weeks), mask [H, T] true = hidden."""
        B, Hq, _ = query.shape
        q = self.q(query).view(B, Hq, self.n_heads, self.d_head).transpose(1, 2)  # [B, h, H, dh]
        k = self.k(key).view(B, key.shape[1], self.n_heads, self.d_head).transpose(1, 2)  # [B, h, T, dh]
        v = self.v(key).unsqueeze(1)  # [B, 1, T, dh], shared by every head
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.d_head)
        attn = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)  # [B, h, H, T]
        heads = self.dropout(attn) @ v  # [B, h, H, dh]
        return self.out(heads.mean(1)), attn.mean(1)


def causal_mask(L: int, H: int, device: torch.device) -> torch.Tensor:
    """[H, L + H], true = hidden: decoder week k (position L + k) sees weeks 0 .. L + k only."""
    positions = torch.arange(L + H, device=device)
    return positions[None, :] > (L + positions[:H])[:, None]


# ----------------------------------------------------------------------------- the model


class TFT(nn.Module):
    def __init__(self, config: TFTConfig) -> None:
        super().__init__()
        self.config = c = config
        d, e, p = c.hidden_size, c.variable_size, c.dropout
        n_static = len(c.static_categoricals) + len(c.static_reals)
        n_known = len(c.known_categoricals) + len(c.known_reals)
        assert n_static > 0, "the TFT needs at least one static input"

        # Input embeddings: every variable becomes an e-vector.
        self.static_cat = (
            CategoricalEmbedding(list(c.static_categoricals.values()), e) if c.static_categoricals else None
        )
        self.static_real = RealEmbedding(len(c.static_reals), e) if c.static_reals else None
        self.known_cat = (
            CategoricalEmbedding(list(c.known_categoricals.values()), e) if c.known_categoricals else None
        )
        self.known_real = RealEmbedding(len(c.known_reals), e) if c.known_reals else None
        self.observed_real = RealEmbedding(len(c.observed_reals), e) if c.observed_reals else None

        # Static covariate encoders: one selected static vector, four contexts from it.
        self.static_selection = VariableSelection(n_static, e, d, p)
        self.context_selection = GatedResidualNetwork(d, d, d, p)  # c_s: variable selection
        self.context_enrichment = GatedResidualNetwork(d, d, d, p)  # c_e: static enrichment
        self.context_hidden = GatedResidualNetwork(d, d, d, p)  # c_h: LSTM initial hidden state
        self.context_cell = GatedResidualNetwork(d, d, d, p)  # c_c: LSTM initial cell state

        # Variable selection over time, conditioned on the static context.
        self.encoder_selection = VariableSelection(n_known + len(c.observed_reals), e, d, p, d_context=d)
        self.decoder_selection = VariableSelection(n_known, e, d, p, d_context=d)

        # Sequence-to-sequence layer: local processing, seeded by the static context.
        lstm_dropout = p if c.lstm_layers > 1 else 0.0
        self.encoder_lstm = nn.LSTM(d, d, c.lstm_layers, batch_first=True, dropout=lstm_dropout)
        self.decoder_lstm = nn.LSTM(d, d, c.lstm_layers, batch_first=True, dropout=lstm_dropout)
        self.lstm_gate = GateAddNorm(d, p)

        # Static enrichment, temporal self-attention, position-wise feed-forward.
        self.enrichment = GatedResidualNetwork(d, d, d, p, d_context=d)
        self.attention = InterpretableMultiHeadAttention(d, c.n_heads, p)
        self.attention_gate = GateAddNorm(d, p)
        self.feed_forward = GatedResidualNetwork(d, d, d, p)
        self.output_gate = GateAddNorm(d, 0.0)
        self.head = nn.Linear(d, len(c.quantiles))
        if c.baseline not in BASELINES:
            raise ValueError(f"baseline {c.baseline!r}: expected one of {BASELINES}")
        if c.baseline == "seasonal_naive":
            missing = [n for n in SEASONAL_NAIVE_INPUTS if n not in c.known_reals + c.observed_reals]
            if missing:
                raise ValueError(f"baseline 'seasonal_naive' needs the inputs {missing}")
            self._season = c.known_reals.index("sales_52_weeks_ago")
            self._season_obs = c.known_reals.index("observed_52_weeks_ago")
            self._target = c.observed_reals.index("target")
            self._target_obs = c.observed_reals.index("is_observed")
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def seasonal_naive(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, H] scaled: sales 52 weeks before each decoder week where observed, else the last
        observed encoder week (the `naive` reference of `model.windows.gather`)."""
        L = self.config.encoder_length
        known, observed = batch["known_real"].float(), batch["observed_real"].float()
        season = known[:, L:, self._season]
        season_obs = known[:, L:, self._season_obs] > 0.5
        enc_obs = observed[:, :, self._target_obs] > 0.5
        weeks = torch.arange(1, L + 1, device=enc_obs.device)
        last_idx = (enc_obs * weeks).argmax(1, keepdim=True)
        last = observed[:, :, self._target].gather(1, last_idx)  # [B, 1]
        return torch.where(season_obs, season, last)

    def forward(self, batch: dict[str, torch.Tensor], return_weights: bool = False):
        c = self.config
        L = c.encoder_length

        # Static covariate encoders.
        static = embed(self.static_cat, self.static_real, batch.get("static_cat"), batch.get("static_real"))
        static, static_weights = self.static_selection(static)  # [B, d]
        c_selection = self.context_selection(static)
        c_enrichment = self.context_enrichment(static)
        c_hidden = self.context_hidden(static)
        c_cell = self.context_cell(static)

        # Variable selection: the encoder sees known and observed inputs, the decoder known ones only.
        known = embed(self.known_cat, self.known_real, batch.get("known_cat"), batch.get("known_real"))
        encoder_in = known[:, :L]
        if self.observed_real is not None:
            encoder_in = torch.cat([encoder_in, self.observed_real(batch["observed_real"])], dim=-2)
        encoder_x, encoder_weights = self.encoder_selection(encoder_in, c_selection)  # [B, L, d]
        decoder_x, decoder_weights = self.decoder_selection(known[:, L:], c_selection)  # [B, H, d]

        # LSTM encoder-decoder, its initial state from the static context.
        state = tuple(s.unsqueeze(0).expand(c.lstm_layers, -1, -1).contiguous() for s in (c_hidden, c_cell))
        encoder_out, state = self.encoder_lstm(encoder_x, state)
        decoder_out, _ = self.decoder_lstm(decoder_x, state)
        x = torch.cat([encoder_x, decoder_x], dim=1)
        phi = self.lstm_gate(torch.cat([encoder_out, decoder_out], dim=1), x)  # [B, T, d]

        # Static enrichment, then masked self-attention from the decoder weeks to all weeks.
        theta = self.enrichment(phi, c_enrichment)
        attended, attention = self.attention(theta[:, L:], theta, causal_mask(L, c.horizon, theta.device))
        delta = self.attention_gate(attended, theta[:, L:])

        # Position-wise feed-forward and a gated skip over the whole attention block.
        out = self.output_gate(self.feed_forward(delta), phi[:, L:])
        with torch.autocast(out.device.type, enabled=False):  # bf16 would round forecasts by ~0.4%
            pred = self.head(out.float())  # [B, H, Q]
            if c.baseline == "seasonal_naive":
                pred = pred + self.seasonal_naive(batch)[..., None]
        if not return_weights:
            return pred
        weights = {
            "static": static_weights,
            "encoder": encoder_weights,
            "decoder": decoder_weights,
            "attention": attention,
        }
        return pred, weights

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Quantile forecasts, sorted along the last axis so P10 <= P50 <= P90 always holds."""
        return self(batch).float().sort(dim=-1).values


class TFTEnsemble(nn.Module):
    """K TFTs of one configuration, trained with different seeds, whose quantile forecasts are averaged.

    The seed alone moves a full-data model's holdout WMAE by about 5% (docs/model.md); the mean of
    a few members is steadier than any one of them and usually better than the average member.
    It costs K times the compute at training and at inference. Same interface as `TFT`.
    """

    def __init__(self, config: TFTConfig, members: int) -> None:
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(TFT(config) for _ in range(members))

    def forward(self, batch: dict[str, torch.Tensor], return_weights: bool = False):
        outputs = [member(batch, return_weights) for member in self.members]
        if not return_weights:
            return torch.stack([out.float() for out in outputs]).mean(0)
        pred = torch.stack([out[0].float() for out in outputs]).mean(0)
        weights = {k: torch.stack([out[1][k].float() for out in outputs]).mean(0) for k in outputs[0][1]}
        return pred, weights

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean quantile forecasts, sorted along the last axis (P10 <= P50 <= P90)."""
        return self(batch).float().sort(dim=-1).values
