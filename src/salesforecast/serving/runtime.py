"""Running the trained TFT for serving: a traced graph, in cache-sized chunks, one thread.

Measured on the 2-core benchmark machine (default architecture, encoder 52), see docs/serving.md:

- `torch.jit.trace` removes most of the per-module Python overhead (one series: ~2.3 -> ~1.4 ms)
  and gives bit-identical outputs; it is checked against the eager model at load, frozen where
  that stays bit-identical (not on Intel CPUs with AMX), and dropped (eager kept) if it differs.
- Large batches are slower per series (2.6 ms at 100 series vs 0.8 ms at 8): the per-variable
  GRNs' [n_vars, B*T, d] intermediates outgrow the caches and the allocator maps fresh pages for
  each. Running chunks of `CHUNK` series keeps every intermediate small.
- Threads: a request of one chunk runs in its caller's thread (single-series requests are fastest
  with one intra-op thread, `OMP_NUM_THREADS=1`, as the server is run); a larger batch spreads
  its chunks over `workers` threads (the traced graph runs without the GIL), which on two cores
  is as fast as two intra-op threads (100 series: ~95 -> ~70 ms) without slowing small requests.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import torch

from salesforecast.model.tft import TFT

INPUTS = ("static_cat", "static_real", "known_cat", "known_real", "observed_real")
CHUNK = 8  # series per model call


class _Predict(torch.nn.Module):
    """`TFT.predict` with positional tensors, so that it can be traced."""

    def __init__(self, model: TFT) -> None:
        super().__init__()
        self.model = model

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model.predict(dict(zip(INPUTS, tensors, strict=True)))


def _example(model: TFT, batch_size: int) -> tuple[torch.Tensor, ...]:
    """Random inputs of the model's shapes (valid vocabulary indices)."""
    c = model.config
    L, T = c.encoder_length, c.encoder_length + c.horizon
    gen = torch.Generator().manual_seed(0)

    def codes(sizes: list[int], *lead: int) -> torch.Tensor:
        cols = [torch.randint(0, max(s, 1), (*lead, 1), generator=gen) for s in sizes]
        return torch.cat(cols, dim=-1) if cols else torch.zeros((*lead, 0), dtype=torch.long)

    return (
        codes(list(c.static_categoricals.values()), batch_size),
        torch.randn(batch_size, len(c.static_reals), generator=gen),
        codes(list(c.known_categoricals.values()), batch_size, T),
        torch.randn(batch_size, T, len(c.known_reals), generator=gen),
        torch.randn(batch_size, L, len(c.observed_reals), generator=gen),
    )


class ModelRunner:
    """`TFT.predict` for any number of series: traced when that is exact, in chunks of `CHUNK`."""

    def __init__(self, model: TFT, trace: bool = True, workers: int | None = None) -> None:
        self.model = model.eval()
        self.workers = workers or min(2, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self.workers, "model") if self.workers > 1 else None
        self.eager = _Predict(self.model).eval()
        self.graph: torch.nn.Module = self.eager
        self.traced = False
        if trace:
            self._trace()

    def _trace(self) -> None:
        example = _example(self.model, CHUNK)
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about Python scalars: checked below
            traced = torch.jit.trace(self.eager, example, check_trace=False)
            checks = [example, _example(self.model, 1), _example(self.model, 3)]
            # Freezing fuses ops, which changes the last bit on some CPUs (Intel with AMX): then
            # the plain trace, else eager.
            for graph in (torch.jit.freeze(traced), traced):
                if all(torch.equal(graph(*x), self.eager(*x)) for x in checks):
                    self.graph, self.traced = graph, True
                    return

    def _chunk(self, tensors: list[torch.Tensor], lo: int) -> torch.Tensor:
        with torch.no_grad():
            return self.graph(*(t[lo : lo + CHUNK] for t in tensors))

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, H, Q] sorted quantile forecasts, in the model's scaled units."""
        tensors = [batch[name] for name in INPUTS]
        starts = range(0, len(tensors[0]), CHUNK)
        if len(starts) == 1:
            return self._chunk(tensors, 0)
        if self._pool is None:
            return torch.cat([self._chunk(tensors, lo) for lo in starts])
        return torch.cat(list(self._pool.map(lambda lo: self._chunk(tensors, lo), starts)))
