"""The model's inputs for a request, laid out in numpy straight from the online read.

Training cuts windows from a `Panel` built from a pandas frame (`model.windows.build_panel`);
doing that per request costs tens of milliseconds of frame work. Here the request's panel is
filled directly: one weekly grid from the oldest week any window reads (52 weeks before its
encoder) to the last forecast week, the values from the offline definitions themselves (sales
transforms of `features.transforms`, the calendar of `features.calendar` and the `seasonality`
view, `holiday_markdown` of the `promotion` view) and the training arithmetic (`normalise_values`,
`encode_values`). `model.windows.gather` then cuts the windows, as in training and evaluation.

What depends only on the materialization is cached: the calendar block of a grid, and each
store's normalised block (keyed by its served values, so a new materialization is never served
stale). A store-week the online store does not serve (older than its arrays) stays at zero, as
a week without a row does in the offline panel; a series' weeks after its latest sales are
unobserved.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from salesforecast.errors import SalesForecastError
from salesforecast.feature_repo.on_demand import promotion_features
from salesforecast.feature_repo.sources import RECENT_WEEKS, SEASON_WEEKS, STORE_RECENT_COLUMNS
from salesforecast.features.transforms import SALES_TRANSFORMS
from salesforecast.model.windows import Panel, Preprocessing, encode_values, gather, normalise_values
from salesforecast.serving.online import WEEK, OnlineRows, calendar_frame

CACHE_LIMIT = 4096  # entries per cache; a materialization needs (stores x grids), 45 on the real data


@dataclass(frozen=True)
class StoreBlock:
    """One store's per-week inputs on a request grid: known [Tg, Kc] / [Tg, Kr], past [Tg, P]."""

    known_cat: np.ndarray
    known_real: np.ndarray
    past_real: np.ndarray


def _none_for_nan(values: np.ndarray) -> list[float | None]:
    return [None if v != v else float(v) for v in values.tolist()]


class InputBuilder:
    """Model inputs for read series; thread-safe, caches keyed by what they depend on."""

    def __init__(self, prep: Preprocessing, encoder_length: int, horizon: int) -> None:
        if encoder_length + SEASON_WEEKS > RECENT_WEEKS:
            raise SalesForecastError(
                f"the model's encoder ({encoder_length} weeks) needs {encoder_length + SEASON_WEEKS} "
                f"weeks of sales history; the online store serves {RECENT_WEEKS}"
            )
        self.prep, self.L, self.H = prep, encoder_length, horizon
        self.window = encoder_length + SEASON_WEEKS  # weeks of sales each series' window reads
        servable = {"store", "dept", "store_type", "store_size", *SALES_TRANSFORMS}
        servable |= {"is_holiday", "holiday_type", "weeks_to_next_holiday", "week_sin", "week_cos"}
        servable |= {"days_to_christmas", *STORE_RECENT_COLUMNS, "holiday_markdown"}
        needed = prep.static_categoricals + prep.static_reals + prep.sales_reals
        needed += prep.known_categoricals + prep.known_reals + prep.past_reals
        missing = [c for c in needed if c not in servable]
        if missing:
            raise SalesForecastError(f"the model reads inputs the online store does not serve: {missing}")
        self._sales_transforms = {name: SALES_TRANSFORMS[name] for name in prep.sales_reals}
        self._calendar: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._stores: dict[tuple, StoreBlock] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ cached blocks

    def calendar_block(self, start: np.datetime64, weeks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Known inputs of every grid week: codes [Tg, Kc], normalised reals [Tg, Kr], is_holiday [Tg]."""
        key = (int(start.astype("datetime64[s]").astype("int64")), weeks)
        block = self._calendar.get(key)
        if block is None:
            cal = calendar_frame(start + np.arange(weeks) * WEEK)
            prep = self.prep
            codes = np.zeros((weeks, len(prep.known_categoricals)), dtype="int64")
            for j, c in enumerate(prep.known_categoricals):
                codes[:, j] = encode_values(cal[c].to_numpy(dtype="int64"), prep.vocab[c])
            reals = np.zeros((weeks, len(prep.known_reals)), dtype="float32")
            for j, c in enumerate(prep.known_reals):
                reals[:, j] = normalise_values(cal[c].to_numpy(dtype="float64"), c, prep)
            block = (codes, reals, cal["is_holiday"].to_numpy(dtype=bool))
            self._remember(self._calendar, key, block)
        return block

    def store_block(
        self, start: np.datetime64, weeks: int, last: np.datetime64, size: float, recent: np.ndarray
    ) -> StoreBlock:
        """A store's inputs on the grid: served weeks up to `last` (T), then the horizon's calendar.

        `recent` [len(STORE_RECENT_COLUMNS), m]: the served covariates of its last m weeks.
        """
        key = (int((start - np.datetime64(0, "s")) // WEEK), weeks, int((last - start) // WEEK), size)
        key += (recent.shape[1], recent.tobytes())
        block = self._stores.get(key)
        if block is None:
            block = self._store_block(start, weeks, last, size, recent)
            self._remember(self._stores, key, block)
        return block

    def _store_block(
        self, start: np.datetime64, weeks: int, last: np.datetime64, size: float, recent: np.ndarray
    ) -> StoreBlock:
        prep, H = self.prep, self.H
        m = recent.shape[1]
        col_last = int((last - start) // WEEK)
        cols = np.arange(col_last - m + 1, col_last + H + 1)  # its rows: m served weeks, then H
        inside = cols >= 0
        cols = cols[inside]
        values = {
            c: np.concatenate([recent[j], np.full(H, np.nan)])[inside]
            for j, c in enumerate(STORE_RECENT_COLUMNS)
        }
        values["has_markdown"] = (values["has_markdown"] > 0.5).astype("float64")
        codes, reals, is_holiday = self.calendar_block(start, weeks)
        n = len(cols)
        promo = promotion_features(
            {
                "total_markdown": _none_for_nan(values["total_markdown"]),
                "is_holiday": is_holiday[cols].tolist(),
                "store_size": [size] * n,
                **{f"markdown{j}": _none_for_nan(values[f"markdown{j}"]) for j in range(1, 6)},
            }
        )
        values["holiday_markdown"] = np.array(
            [np.nan if v is None else v for v in promo["holiday_markdown"]], dtype="float64"
        )
        known_cat = np.zeros((weeks, len(prep.known_categoricals)), dtype="int64")
        known_cat[cols] = codes[cols]
        known_real = np.zeros((weeks, len(prep.known_reals)), dtype="float32")
        known_real[cols] = reals[cols]
        past_real = np.zeros((weeks, len(prep.past_reals)), dtype="float32")
        for j, c in enumerate(prep.past_reals):
            past_real[cols, j] = normalise_values(values[c], c, prep)
        for a in (known_cat, known_real, past_real):
            a.setflags(write=False)
        return StoreBlock(known_cat, known_real, past_real)

    def _remember(self, cache: dict, key: tuple, value: object) -> None:
        with self._lock:
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            cache[key] = value

    # ------------------------------------------------------------------ per request

    def panel(self, rows: OnlineRows) -> tuple[Panel, np.ndarray]:
        """The request's panel (series in read order) and each series' grid column of its origin."""
        prep, H, window = self.prep, self.H, self.window
        n = len(rows.keys)
        T = rows.store_date
        lag_weeks = ((T - rows.sales_date) // WEEK).astype("int64")
        if (lag_weeks < 0).any():
            raise SalesForecastError("online store: a series is materialized beyond its store's latest week")
        start = T.min() - (window - 1) * WEEK
        col_T = ((T - start) // WEEK).astype("int64")  # grid column of each series' store week T
        weeks = int(col_T.max()) + 1 + H

        # Each series' sales on RECENT_WEEKS weeks ending at its store's T, then its sales features.
        shift = np.minimum(lag_weeks, RECENT_WEEKS)
        recent_cols = np.arange(RECENT_WEEKS)[None, :] + shift[:, None]
        sales = np.take_along_axis(rows.recent_sales, np.minimum(recent_cols, RECENT_WEEKS - 1), axis=1)
        sales[recent_cols >= RECENT_WEEKS] = np.nan
        features = [transform(sales) for transform in self._sales_transforms.values()]

        # The window's weeks onto the grid; weeks after the series' latest week have no row.
        first = RECENT_WEEKS - window
        keep = np.arange(first, RECENT_WEEKS)[None, :] <= (RECENT_WEEKS - 1 - lag_weeks)[:, None]
        r = np.repeat(np.arange(n), window)
        g = (col_T[:, None] - (window - 1) + np.arange(window)).reshape(-1)
        window_sales = np.where(keep, sales[:, first:], np.nan).reshape(-1)
        observed_rows = np.isfinite(window_sales)
        target = np.zeros((n, weeks), dtype="float32")
        observed = np.zeros((n, weeks), dtype=bool)
        target[r[observed_rows], g[observed_rows]] = window_sales[observed_rows]
        observed[r[observed_rows], g[observed_rows]] = True
        block = np.zeros((n, weeks, len(features)), dtype="float32")
        if features:
            stacked = np.stack([f[:, first:] for f in features], axis=-1)  # [n, window, F]
            stacked = np.where(keep[..., None], np.nan_to_num(stacked, nan=0.0), 0.0)
            block[r, g] = stacked.reshape(n * window, -1).astype("float32")

        stores = np.array([k[0] for k in rows.keys], dtype="int64")
        depts = np.array([k[1] for k in rows.keys], dtype="int64")
        static = {"store": stores, "dept": depts, "store_type": rows.store_scalars["store_type"]}
        static_cat = np.zeros((n, len(prep.static_categoricals)), dtype="int64")
        for j, c in enumerate(prep.static_categoricals):
            static_cat[:, j] = encode_values(np.asarray(static[c], dtype="int64"), prep.vocab[c])
        sizes = np.asarray(rows.store_scalars["store_size"], dtype="float64")
        static_real = np.zeros((n, len(prep.static_reals)), dtype="float32")
        for j, c in enumerate(prep.static_reals):
            static_real[:, j] = normalise_values(sizes, c, prep)

        distinct, first_row, store_index = np.unique(stores, return_index=True, return_inverse=True)
        blocks = [
            self.store_block(start, weeks, T[i], float(sizes[i]), rows.store_recent[int(store)])
            for store, i in zip(distinct, first_row, strict=True)
        ]
        panel = Panel(
            dates=pd.DatetimeIndex(start + np.arange(weeks) * WEEK),
            keys=pd.DataFrame({"store": stores, "dept": depts}),
            store_index=torch.from_numpy(store_index.astype("int64")),
            target=torch.from_numpy(target),
            observed=torch.from_numpy(observed),
            sales=torch.from_numpy(block),
            static_cat=torch.from_numpy(static_cat),
            static_real=torch.from_numpy(static_real),
            known_cat=torch.from_numpy(np.stack([b.known_cat for b in blocks])),
            known_real=torch.from_numpy(np.stack([b.known_real for b in blocks])),
            past_real=torch.from_numpy(np.stack([b.past_real for b in blocks])),
            prep=prep,
        )
        return panel, col_T + 1

    def batch(self, rows: OnlineRows) -> tuple[dict[str, torch.Tensor], np.ndarray]:
        """The model inputs of every read series (in read order) and each one's origin (T + 1 week)."""
        panel, origin_col = self.panel(rows)
        series = torch.arange(len(rows.keys))
        batch = gather(panel, series, torch.from_numpy(origin_col), self.L, self.H)
        return batch, rows.store_date + WEEK
