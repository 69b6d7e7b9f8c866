"""Sales transforms over a dense (series x week) panel, in the spirit of mlforecast's lag transforms.

The panel holds NaN for weeks a series has no row, so a lag of k always means k calendar weeks
and a gap is never silently filled. Every transform reads column t-1 or earlier only: the value at
week t is computed from sales up to week t-1, which is what makes the features leak-free.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Transform = Callable[[np.ndarray], np.ndarray]


def shift(panel: np.ndarray, k: int) -> np.ndarray:
    """Value k weeks earlier; NaN where that week is before the panel or missing."""
    out = np.full_like(panel, np.nan)
    out[:, k:] = panel[:, :-k]
    return out


def _windows(panel: np.ndarray, window: int) -> np.ndarray:
    """For week t, the `window` values at weeks t-window .. t-1 (NaN-padded on the left)."""
    lagged = shift(panel, 1)
    padded = np.concatenate([np.full((panel.shape[0], window - 1), np.nan), lagged], axis=1)
    return sliding_window_view(padded, window, axis=1)


def lag(k: int) -> Transform:
    return lambda panel: shift(panel, k)


def rolling_mean(window: int) -> Transform:
    """Mean of the observed weeks among t-window .. t-1; NaN when none was observed."""

    def transform(panel: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(_windows(panel, window), axis=-1)

    return transform


def rolling_std(window: int) -> Transform:
    """Sample standard deviation (ddof=1) of the observed weeks among t-window .. t-1.

    NaN when fewer than two of those weeks were observed.
    """

    def transform(panel: np.ndarray) -> np.ndarray:
        windows = _windows(panel, window)
        enough = (~np.isnan(windows)).sum(axis=-1) >= 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            std = np.nanstd(windows, axis=-1, ddof=1)
        return np.where(enough, std, np.nan)

    return transform


# The seed's feature names, in the order they appear in `sales_features`.
SALES_TRANSFORMS: dict[str, Transform] = {
    "sales_lag_1": lag(1),
    "sales_lag_2": lag(2),
    "sales_lag_4": lag(4),
    "sales_lag_52": lag(52),
    "sales_rolling_mean_4": rolling_mean(4),
    "sales_rolling_mean_12": rolling_mean(12),
    "sales_rolling_std_4": rolling_std(4),
    "sales_rolling_std_12": rolling_std(12),
}
