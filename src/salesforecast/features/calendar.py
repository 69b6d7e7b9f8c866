"""Holiday calendar: facts known in advance, computed by rule so they extend to any future week.

A Kaggle week is labelled by its Friday and covers Saturday..Friday, so a holiday belongs to
the first Friday on or after the holiday itself (Christmas 2010, a Saturday, is week 2010-12-31).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HOLIDAYS = ("super_bowl", "labor_day", "thanksgiving", "christmas")
HOLIDAY_CODES = {"none": 0} | {name: i + 1 for i, name in enumerate(HOLIDAYS)}


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> pd.Timestamp:
    first = pd.Timestamp(year=year, month=month, day=1)
    return first + pd.Timedelta(days=(weekday - first.dayofweek) % 7 + 7 * (n - 1))


def holiday_dates(year: int) -> dict[str, pd.Timestamp]:
    """The day of each holiday in `year` (Super Bowl: first Sunday of February, as in 2010-2013)."""
    return {
        "super_bowl": _nth_weekday(year, 2, 6, 1),
        "labor_day": _nth_weekday(year, 9, 0, 1),
        "thanksgiving": _nth_weekday(year, 11, 3, 4),
        "christmas": pd.Timestamp(year=year, month=12, day=25),
    }


def week_ending(day: pd.Timestamp) -> pd.Timestamp:
    """The Friday that labels the week holding `day`."""
    return day + pd.Timedelta(days=(4 - day.dayofweek) % 7)


def holiday_weeks(first_year: int, last_year: int) -> pd.DataFrame:
    """Week label and holiday name for each holiday from `first_year` to `last_year`."""
    rows = [
        (week_ending(day), name)
        for year in range(first_year, last_year + 1)
        for name, day in holiday_dates(year).items()
    ]
    return pd.DataFrame(rows, columns=["date", "holiday"]).sort_values("date", ignore_index=True)


def calendar_features(dates: pd.Series | pd.DatetimeIndex) -> pd.DataFrame:
    """Week of year, month, which holiday and weeks to the next holiday, for each date."""
    dates = pd.DatetimeIndex(dates)
    weeks = holiday_weeks(dates.year.min() - 1, dates.year.max() + 1)
    code = (
        pd.Series(weeks["holiday"].map(HOLIDAY_CODES).to_numpy(), index=weeks["date"])
        .reindex(dates)
        .fillna(0)
        .astype("int8")
        .to_numpy()
    )
    holiday_days = weeks["date"].to_numpy()
    nxt = np.searchsorted(holiday_days, dates.to_numpy(), side="left")
    weeks_to_next = (holiday_days[nxt] - dates.to_numpy()).astype("timedelta64[D]").astype(int) // 7
    return pd.DataFrame(
        {
            "week_of_year": dates.isocalendar().week.to_numpy().astype("int16"),
            "month": dates.month.to_numpy().astype("int8"),
            "holiday_type": code,
            "weeks_to_next_holiday": weeks_to_next.astype("int16"),
        }
    )
