"""From the training frame to model batches: a dense panel of tensors, and windows cut from it.

The frame (one row per series and week, see `load_training_frame`) becomes a `Panel`: per series
a [T] target and observed mask and a [T, F] block of sales features, per store a [T, F] block of
store-week features, all on one weekly grid. A window is (series, decoder start); a batch of
windows is cut from the panel with one advanced-indexing gather, no per-window Python.

Gaps are explicit: unobserved weeks hold 0 with `observed` false, weeks before the grid are
clamped and masked, the loss ignores unobserved targets, and a window must have enough observed
encoder weeks and at least one observed target week.

Scaling: each window's sales (target, lags, rolling statistics, the value 52 weeks earlier) are
divided by the mean absolute sales of its observed encoder weeks, floored so zero, negative and
tiny series stay finite; the log of that scale is a static input. Other real inputs are
transformed (log, signed log) and standardised with statistics of the training weeks only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from salesforecast.config import Settings
from salesforecast.errors import SalesForecastError

WEEK = pd.Timedelta(days=7)
SEASON = 52  # weeks: the seasonal lag fed to the decoder and used by the seasonal-naive reference

# Inputs chosen by column name; optional ones are used when the frame has them.
STATIC_CATEGORICALS = ("store", "dept", "store_type")
STATIC_REALS = ("store_size",)
KNOWN_CATEGORICALS = ("holiday_type",)
KNOWN_REALS = ("is_holiday", "week_sin", "week_cos", "weeks_to_next_holiday", "days_to_christmas")
SALES_REALS = (  # per series, in sales units: divided by the window's scale
    "sales_lag_1",
    "sales_lag_2",
    "sales_lag_4",
    "sales_rolling_mean_4",
    "sales_rolling_mean_12",
    "sales_rolling_std_4",
    "sales_rolling_std_12",
)
MARKDOWNS = ("markdown1", "markdown2", "markdown3", "markdown4", "markdown5", "total_markdown")
PAST_REALS = (  # per store, known only up to the forecast origin
    "temperature",
    "fuel_price",
    "cpi",
    "unemployment",
    *MARKDOWNS,
    "has_markdown",
    "holiday_markdown",
)
# The model's default takes none of them (`covariates`): fuel price, CPI and unemployment trend, so
# weeks after the training period lie outside every value the model learned from, and markdowns
# exist only from 2011-11; with them, the first backtest fold's TFT scored WMAE 3,673 against
# 1,883 without (docs/model.md).
DEFAULT_COVARIATES = "none"
REQUIRED = ("store", "dept", "date", "weekly_sales")
# How each real input is transformed before standardising ("raw": left as is).
TRANSFORMS = {
    "store_size": "log",
    "is_holiday": "raw",
    "has_markdown": "raw",
    "week_sin": "raw",
    "week_cos": "raw",
    "holiday_markdown": "signed_log",
} | dict.fromkeys(MARKDOWNS, "signed_log")

# Inputs made here from the panel rather than read from the frame.
DERIVED_STATIC_REALS = ("log_scale",)
DERIVED_KNOWN_REALS = ("sales_52_weeks_ago", "observed_52_weeks_ago", "relative_time")


def season_neighbours(window: int) -> list[int]:
    """Lags of last year's weeks around the seasonal one: window 1 -> [53, 51]."""
    return [SEASON + sign * k for k in range(1, window + 1) for sign in (1, -1)]


DERIVED_OBSERVED_REALS = ("target", "is_observed")


# ----------------------------------------------------------------------------- preprocessing


@dataclass
class Preprocessing:
    """What turns a frame into model inputs: kept with the model, so prediction matches training.

    `scaler` maps a real column to (transform, mean, std), fitted on the training weeks;
    `vocab` maps a categorical column to its known values (index 0 is reserved for unknown).
    """

    static_categoricals: list[str]
    static_reals: list[str]
    known_categoricals: list[str]
    known_reals: list[str]
    sales_reals: list[str]
    past_reals: list[str]
    vocab: dict[str, list[int]] = field(default_factory=dict)
    scaler: dict[str, tuple[str, float, float]] = field(default_factory=dict)
    scale_floor: float = 10.0
    log_scale_mean: float = 0.0
    log_scale_std: float = 1.0
    fitted_until: str = ""
    # Sales of last year's weeks 52 +- 1..season_window before each week, as known inputs too.
    season_window: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Preprocessing:
        return cls(**values)

    def target_scaler(self) -> dict[str, Any]:
        """The target scaling's parameters (the `target_scaler.pkl` artefact)."""
        return {
            "method": "mean absolute sales of the window's observed encoder weeks",
            "floor": self.scale_floor,
            "log_scale_mean": self.log_scale_mean,
            "log_scale_std": self.log_scale_std,
        }

    def model_inputs(self) -> dict[str, Any]:
        """The TFT's input lists and vocabulary sizes (TFTConfig fields)."""
        return {
            "static_categoricals": {c: len(self.vocab[c]) + 1 for c in self.static_categoricals},
            "static_reals": [*self.static_reals, *DERIVED_STATIC_REALS],
            "known_categoricals": {c: len(self.vocab[c]) + 1 for c in self.known_categoricals},
            "known_reals": [
                *self.known_reals,
                *DERIVED_KNOWN_REALS,
                *(f"sales_{lag}_weeks_ago" for lag in season_neighbours(self.season_window)),
            ],
            "observed_reals": [*DERIVED_OBSERVED_REALS, *self.sales_reals, *self.past_reals],
        }


def add_calendar(frame: pd.DataFrame) -> pd.DataFrame:
    """Week-of-year sine/cosine and days to Christmas, unless the feature store already gave them.

    Same formulas as the feature repository's `seasonality` view (ISO week / 52.1775).
    """
    dates = pd.DatetimeIndex(frame["date"])
    out = frame.copy()
    if "week_sin" not in out or "week_cos" not in out:
        angle = 2 * np.pi * dates.isocalendar().week.to_numpy(dtype="float64") / 52.1775
        out["week_sin"], out["week_cos"] = np.sin(angle), np.cos(angle)
    if "days_to_christmas" not in out:
        naive = dates.tz_localize(None) if dates.tz is not None else dates
        christmas = pd.to_datetime(naive.year.astype(str) + "-12-25")
        christmas = christmas.where(christmas >= naive.normalize(), christmas + pd.DateOffset(years=1))
        out["days_to_christmas"] = (christmas - naive.normalize()).days.to_numpy()
    return out


def check_frame(frame: pd.DataFrame, source: str = "training frame") -> None:
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise SalesForecastError(
            f"{source}: missing columns {missing} (expected at least {list(REQUIRED)} and features)"
        )
    if frame.empty:
        raise SalesForecastError(f"{source}: no rows")


def _transform(values: np.ndarray, how: str) -> np.ndarray:
    if how == "log":
        return np.log1p(np.maximum(values, 0.0))
    if how == "signed_log":
        return np.sign(values) * np.log1p(np.abs(values))
    return values


def covariate_columns(covariates: str) -> list[str]:
    """The store-week covariates named by `covariates`: "none", "all" or a comma-separated list."""
    text = covariates.strip().lower()
    if text in {"", "none"}:
        return []
    if text == "all":
        return list(PAST_REALS)
    names = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in names if c not in PAST_REALS]
    if unknown:
        raise SalesForecastError(
            f"--covariates {covariates!r}: unknown {unknown}; "
            f"expected none, all or some of {list(PAST_REALS)}"
        )
    return [c for c in PAST_REALS if c in names]


def fit_preprocessing(
    frame: pd.DataFrame,
    fit_until: pd.Timestamp,
    scale_floor: float = 10.0,
    covariates: str = DEFAULT_COVARIATES,
    season_window: int = 0,
) -> Preprocessing:
    """Choose the inputs the frame has and fit every statistic on weeks before `fit_until` only."""
    check_frame(frame)
    if not 0 <= season_window < SEASON // 2:
        raise SalesForecastError(f"season window {season_window}: expected 0..{SEASON // 2 - 1} weeks")
    frame = add_calendar(frame)
    have = set(frame.columns)
    wanted = covariate_columns(covariates)
    prep = Preprocessing(
        static_categoricals=[c for c in STATIC_CATEGORICALS if c in have],
        static_reals=[c for c in STATIC_REALS if c in have],
        known_categoricals=[c for c in KNOWN_CATEGORICALS if c in have],
        known_reals=[c for c in KNOWN_REALS if c in have],
        sales_reals=[c for c in SALES_REALS if c in have],
        past_reals=[c for c in wanted if c in have],
        scale_floor=scale_floor,
        fitted_until=str(fit_until.date()),
        season_window=season_window,
    )
    train = frame[_dates(frame) < fit_until]
    if train.empty:
        raise SalesForecastError(f"training frame: no rows before {fit_until.date()} to fit the scalers on")
    for col in prep.static_categoricals + prep.known_categoricals:
        prep.vocab[col] = sorted(int(v) for v in pd.unique(train[col].dropna()))
    for col in prep.static_reals + prep.known_reals + prep.past_reals:
        how = TRANSFORMS.get(col, "standard")
        values = _transform(train[col].to_numpy(dtype="float64"), how)
        if how == "raw":
            prep.scaler[col] = (how, 0.0, 1.0)
            continue
        mean, std = float(np.nanmean(values)), float(np.nanstd(values))
        prep.scaler[col] = (how, mean if math.isfinite(mean) else 0.0, std if std > 1e-8 else 1.0)
    return prep


def _normalise(frame: pd.DataFrame, cols: list[str], prep: Preprocessing) -> np.ndarray:
    """[rows, len(cols)] float32: transformed, standardised, missing values at the mean (0)."""
    out = np.zeros((len(frame), len(cols)), dtype="float32")
    for j, col in enumerate(cols):
        out[:, j] = normalise_values(frame[col].to_numpy(dtype="float64"), col, prep)
    return out


def normalise_values(values: np.ndarray, col: str, prep: Preprocessing) -> np.ndarray:
    """One real input's float64 values, transformed and standardised, missing at the mean (0).

    Public so that serving normalises its arrays with the very arithmetic of training.
    """
    how, mean, std = prep.scaler[col]
    return np.nan_to_num((_transform(values, how) - mean) / std, nan=0.0, posinf=0.0, neginf=0.0)


def _encode(values: pd.Series, vocab: list[int]) -> np.ndarray:
    """Vocabulary index (1-based); unknown and missing values map to 0."""
    return encode_values(values.fillna(-1).astype("int64").to_numpy(), vocab)


def encode_values(values: np.ndarray, vocab: list[int]) -> np.ndarray:
    """Vocabulary index (1-based) of int64 values; unknown ones (and -1, missing) map to 0."""
    codes = pd.Index(vocab).get_indexer(values)
    return (codes + 1).astype("int64")


def _naive(day: Any) -> pd.Timestamp:
    """A timestamp as tz-naive UTC, the panel's convention."""
    day = pd.Timestamp(day)
    return day.tz_convert("UTC").tz_localize(None) if day.tzinfo else day


def _dates(frame: pd.DataFrame) -> pd.DatetimeIndex:
    dates = pd.DatetimeIndex(frame["date"])
    return dates.tz_convert("UTC").tz_localize(None) if dates.tz is not None else dates


# ----------------------------------------------------------------------------- the panel


@dataclass
class Panel:
    """Dense tensors on one weekly grid of T weeks (S series, N stores)."""

    dates: pd.DatetimeIndex  # [T], tz-naive
    keys: pd.DataFrame  # [S] store, dept
    store_index: torch.Tensor  # [S] long: row of each series' store in the store blocks
    target: torch.Tensor  # [S, T] float32, 0 where unobserved
    observed: torch.Tensor  # [S, T] bool
    sales: torch.Tensor  # [S, T, len(sales_reals)] float32 in sales units, 0 where missing
    static_cat: torch.Tensor  # [S, Sc] long
    static_real: torch.Tensor  # [S, Sr] float32, normalised
    known_cat: torch.Tensor  # [N, T, Kc] long
    known_real: torch.Tensor  # [N, T, Kr] float32, normalised
    past_real: torch.Tensor  # [N, T, P] float32, normalised
    prep: Preprocessing

    def week(self, date: Any) -> int:
        """Grid index of a date (may lie before or after the grid)."""
        return int((_naive(date) - self.dates[0]) // WEEK)


def build_panel(
    frame: pd.DataFrame, prep: Preprocessing, store_features: pd.DataFrame | None = None
) -> Panel:
    """Lay the frame out on a dense (series x week) grid.

    With `store_features` the grid runs on to its last week, and the store-week inputs of weeks
    the frame lacks (the future, for prediction) come from it.
    """
    check_frame(frame)
    frame = add_calendar(frame)
    needed = prep.static_categoricals + prep.static_reals + prep.sales_reals
    needed += prep.known_categoricals + prep.known_reals + prep.past_reals
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise SalesForecastError(f"frame lacks columns the model was trained with: {missing}")
    dates = _dates(frame)
    start, end = dates.min(), dates.max()
    store_rows = frame.drop_duplicates(["store", "date"])
    if store_features is not None:
        extra = add_calendar(store_features)
        extra_dates = _dates(extra)
        end = max(end, extra_dates.max())
        extra = extra[extra_dates >= start]
        store_rows = pd.concat([store_rows, extra], ignore_index=True).drop_duplicates(["store", "date"])
    if ((dates - start) % WEEK != pd.Timedelta(0)).any():
        raise SalesForecastError("training frame: dates are not whole weeks apart (expected weekly data)")
    grid = pd.date_range(start, end, freq="7D")
    T = len(grid)

    keys = frame[["store", "dept"]].drop_duplicates().sort_values(["store", "dept"], ignore_index=True)
    keys = keys.astype("int64")
    stores = np.sort(pd.unique(pd.concat([keys["store"], store_rows["store"].astype("int64")])))
    S, N = len(keys), len(stores)
    row = pd.MultiIndex.from_frame(keys).get_indexer(
        pd.MultiIndex.from_frame(frame[["store", "dept"]].astype("int64"))
    )
    col = ((dates - start) // WEEK).to_numpy()
    if len(np.unique(row * T + col)) != len(frame):
        raise SalesForecastError("training frame: duplicate (store, dept, date) rows")

    sales = frame["weekly_sales"].to_numpy(dtype="float64")
    observed_rows = np.isfinite(sales)
    if "is_observed" in frame:
        observed_rows &= frame["is_observed"].fillna(False).to_numpy(dtype=bool)
    target = np.zeros((S, T), dtype="float32")
    observed = np.zeros((S, T), dtype=bool)
    target[row[observed_rows], col[observed_rows]] = sales[observed_rows]
    observed[row[observed_rows], col[observed_rows]] = True
    sales_block = np.zeros((S, T, len(prep.sales_reals)), dtype="float32")
    if prep.sales_reals:
        values = frame[prep.sales_reals].to_numpy(dtype="float64")
        sales_block[row, col] = np.nan_to_num(values, nan=0.0).astype("float32")

    # Per series: its store's row, categorical codes, normalised static reals (first row of the series).
    first = frame.assign(_row=row).drop_duplicates("_row").sort_values("_row")
    store_index = np.searchsorted(stores, keys["store"].to_numpy())
    static_cat = np.stack([_encode(first[c], prep.vocab[c]) for c in prep.static_categoricals], axis=1)
    static_real = _normalise(first, prep.static_reals, prep)

    # Per store and week: known and past-only inputs.
    srow = np.searchsorted(stores, store_rows["store"].to_numpy(dtype="int64"))
    scol = ((_dates(store_rows) - start) // WEEK).to_numpy()
    inside = (scol >= 0) & (scol < T)
    srow, scol, store_rows = srow[inside], scol[inside], store_rows[inside]
    known_cat = np.zeros((N, T, len(prep.known_categoricals)), dtype="int64")
    for j, c in enumerate(prep.known_categoricals):
        known_cat[srow, scol, j] = _encode(store_rows[c], prep.vocab[c])
    known_real = np.zeros((N, T, len(prep.known_reals)), dtype="float32")
    known_real[srow, scol] = _normalise(store_rows, prep.known_reals, prep)
    past_real = np.zeros((N, T, len(prep.past_reals)), dtype="float32")
    past_real[srow, scol] = _normalise(store_rows, prep.past_reals, prep)

    return Panel(
        dates=grid,
        keys=keys,
        store_index=torch.from_numpy(store_index.astype("int64")),
        target=torch.from_numpy(target),
        observed=torch.from_numpy(observed),
        sales=torch.from_numpy(sales_block),
        static_cat=torch.from_numpy(static_cat.reshape(S, len(prep.static_categoricals))),
        static_real=torch.from_numpy(static_real),
        known_cat=torch.from_numpy(known_cat),
        known_real=torch.from_numpy(known_real),
        past_real=torch.from_numpy(past_real),
        prep=prep,
    )


# ----------------------------------------------------------------------------- windows


def window_index(
    panel: Panel,
    encoder_length: int,
    horizon: int,
    first_week: int,
    end_week: int,
    min_encoder_weeks: int = 8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every usable window whose decoder weeks lie in [first_week, end_week): (series, decoder start).

    Usable: at least `min_encoder_weeks` observed encoder weeks and one observed target week.
    """
    T = panel.observed.shape[1]
    obs = panel.observed.to(torch.int32)
    csum = torch.nn.functional.pad(obs.cumsum(1), (1, 0))  # csum[:, t] = observed weeks before t

    def count(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:  # observed weeks in [lo, hi)
        return csum[:, hi.clamp(0, T)] - csum[:, lo.clamp(0, T)]

    lo, stop = max(first_week, 0), min(end_week, T) - horizon + 1
    starts = torch.arange(lo, max(lo, stop))  # no room for a whole horizon: no windows
    if len(starts) == 0:
        return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    enough_history = count(starts - encoder_length, starts) >= min_encoder_weeks
    any_target = count(starts, starts + horizon) > 0
    series, which = torch.nonzero(enough_history & any_target, as_tuple=True)
    return series, starts[which]


def gather(
    panel: Panel, series: torch.Tensor, start: torch.Tensor, encoder_length: int, horizon: int
) -> dict:
    """Cut windows (series[i], decoder start[i]) out of the panel: one batch of model inputs.

    Returns the TFT's inputs plus `target` and `mask` ([B, H], scaled), `scale` ([B]), `naive`
    ([B, H], the scaled seasonal-naive forecast: sales 52 weeks earlier, else the last observed
    encoder week) and `holiday` ([B, H], for holiday-weighted errors).
    """
    L, H = encoder_length, horizon
    if SEASON - panel.prep.season_window < H:  # else a decoder week reads last year's week after the origin
        raise SalesForecastError(
            f"horizon {H} weeks with season window {panel.prep.season_window}: "
            f"at most {SEASON - panel.prep.season_window}"
        )
    T = panel.target.shape[1]
    t = start[:, None] - L + torch.arange(L + H)  # [B, L+H] grid weeks of each window
    inside = (t >= 0) & (t < T)
    tc = t.clamp(0, T - 1)
    s = series[:, None]
    y = panel.target[s, tc] * inside
    obs = panel.observed[s, tc] & inside

    enc_obs = obs[:, :L]
    scale = _scale(y[:, :L], enc_obs, panel.prep.scale_floor)  # [B]
    y = y / scale[:, None]

    # The week 52 earlier, known at the forecast origin for every decoder week (H <= 52).
    ts = t - SEASON
    season_inside = (ts >= 0) & (ts < T)
    tsc = ts.clamp(0, T - 1)
    season_obs = panel.observed[s, tsc] & season_inside
    season = panel.target[s, tsc] * season_obs / scale[:, None]

    # Last year's neighbouring weeks (a holiday that moves by a weekday shifts sales between
    # them), 0 where unobserved. Never read before the window's first week - 52, so serving's
    # window of encoder + 52 weeks holds all they need.
    def season_at(lag: int) -> torch.Tensor:
        tl = t - lag
        ok = (tl >= 0) & (tl < T) & (tl >= start[:, None] - L - SEASON)
        tlc = tl.clamp(0, T - 1)
        return panel.target[s, tlc] * (panel.observed[s, tlc] & ok) / scale[:, None]

    st = panel.store_index[series][:, None]
    rel = ((torch.arange(L + H) - L) / max(L, 1)).expand(len(series), -1)
    known_real = torch.cat(
        [
            panel.known_real[st, tc] * inside[..., None],
            torch.stack(
                [
                    season,
                    season_obs.float(),
                    rel,
                    *map(season_at, season_neighbours(panel.prep.season_window)),
                ],
                dim=-1,
            ),
        ],
        dim=-1,
    )
    enc_t, enc_inside = tc[:, :L], inside[:, :L, None]
    observed_real = torch.cat(
        [
            torch.stack([y[:, :L], enc_obs.float()], dim=-1),
            panel.sales[s, enc_t] * enc_inside / scale[:, None, None],
            panel.past_real[st, enc_t] * enc_inside,
        ],
        dim=-1,
    )
    log_scale = (scale.log() - panel.prep.log_scale_mean) / panel.prep.log_scale_std
    static_real = torch.cat([panel.static_real[series], log_scale[:, None]], dim=-1)

    # Seasonal naive (scaled): sales 52 weeks earlier where observed, else the last observed encoder week.
    last_idx = (enc_obs * torch.arange(1, L + 1)).argmax(1)
    last = y[torch.arange(len(series)), last_idx]
    naive = torch.where(season_obs[:, L:], season[:, L:], last[:, None])

    return {
        "static_cat": panel.static_cat[series],
        "static_real": static_real,
        "known_cat": panel.known_cat[st, tc] * inside[..., None],
        "known_real": known_real,
        "observed_real": observed_real,
        "target": y[:, L:],
        "mask": obs[:, L:],
        "scale": scale,
        "naive": naive,
        "holiday": _holiday(panel, st, tc[:, L:]),
    }


def _holiday(panel: Panel, st: torch.Tensor, tc: torch.Tensor) -> torch.Tensor:
    if "is_holiday" not in panel.prep.known_reals:
        return torch.zeros(tc.shape, dtype=torch.bool)
    j = panel.prep.known_reals.index("is_holiday")
    return panel.known_real[st, tc, j] > 0.5


def _scale(y: torch.Tensor, observed: torch.Tensor, floor: float) -> torch.Tensor:
    """Mean |sales| over the observed encoder weeks [B, L], floored (also when none is observed)."""
    mean_abs = (y.abs() * observed).sum(1) / observed.sum(1).clamp_min(1)
    return mean_abs.clamp_min(floor)


def window_scale(
    panel: Panel, series: torch.Tensor, start: torch.Tensor, encoder_length: int
) -> torch.Tensor:
    """The scale `gather` divides each window's sales by, without cutting the whole window."""
    T = panel.target.shape[1]
    t = start[:, None] - encoder_length + torch.arange(encoder_length)
    tc = t.clamp(0, T - 1)
    obs = panel.observed[series[:, None], tc] & (t >= 0) & (t < T)
    return _scale(panel.target[series[:, None], tc], obs, panel.prep.scale_floor)


def fit_log_scale(panel: Panel, series: torch.Tensor, start: torch.Tensor, encoder_length: int) -> None:
    """Standardise the log-scale input with the training windows' statistics (in place)."""
    log_scale = window_scale(panel, series, start, encoder_length).log()
    std = float(log_scale.std()) if len(log_scale) > 1 else 0.0
    panel.prep.log_scale_mean = float(log_scale.mean())
    panel.prep.log_scale_std = std if std > 1e-6 else 1.0


# ----------------------------------------------------------------------------- the frame


def load_training_frame(
    settings: Settings, sample_size: int | None = None, end: pd.Timestamp | None = None, seed: int = 0
) -> pd.DataFrame:
    """The training frame: one row per (series, week) with the features. The single data seam.

    Uses the Feast training set (`salesforecast.featurestore.training_set.build_training_set`)
    when that module exists, else joins the two offline tables on (store, date). With
    `sample_size`, whole series are drawn at random until about that many rows (windows need
    contiguous weeks); `end` keeps only weeks before it.
    """
    end = None if end is None else _naive(end)
    try:
        from salesforecast.featurestore.training_set import build_training_set
    except ImportError:
        build_training_set = None
    if build_training_set is not None:
        # Its `end` is inclusive: the day before `end` keeps exactly the weeks before it.
        last = None if end is None else end - pd.Timedelta(days=1)
        frame = build_training_set(settings, sample_size=sample_size, end=last)
    else:
        frame = _join_offline_tables(settings, sample_size, end, seed)
    frame = frame[_dates(frame) < end] if end is not None else frame
    return frame.reset_index(drop=True)


def _join_offline_tables(
    settings: Settings, sample_size: int | None, end: pd.Timestamp | None, seed: int
) -> pd.DataFrame:
    from salesforecast.offline.store import read_feature_table

    end = None if end is None else _naive(end)

    try:
        sales = read_feature_table(settings, "sales_features")
        stores = read_feature_table(settings, "store_features")
    except (FileNotFoundError, OSError) as exc:
        raise SalesForecastError(
            f"offline store not found for profile {settings.profile.value} ({exc}); "
            "run `salesforecast features build --data-dir DIR` first"
        ) from None
    if end is not None:
        sales = sales[_dates(sales) < end]
    if sample_size is not None and sample_size < len(sales):
        sizes = sales.groupby(["store", "dept"]).size()
        sizes = sizes.iloc[np.random.default_rng(seed).permutation(len(sizes))]
        keep = sizes.cumsum().to_numpy() <= sample_size
        keep[0] = True
        sales = sales.merge(sizes[keep].index.to_frame(index=False), on=["store", "dept"])
    return join_feature_tables(sales, stores)


def join_feature_tables(sales: pd.DataFrame, stores: pd.DataFrame) -> pd.DataFrame:
    """`sales_features` rows with their store-week facts: the training frame without Feast."""
    stores = stores.drop(columns=[c for c in stores.columns if c in sales and c not in ("store", "date")])
    return sales.merge(stores, on=["store", "date"], how="left", validate="many_to_one")
