"""The two batch feature views, shared by every profile (only their sources differ).

Every row is a week labelled by its Friday (UTC midnight). A row dated t is valid for week t only:
its lags are "k weeks before t", so a row of an earlier week must never stand in for a missing one.
The TTL of 6 days says exactly that to Feast's point-in-time join: the row dated t joins entity
timestamps t..t+6 days, never t+7 days.
"""

from __future__ import annotations

from datetime import timedelta

from feast import FeatureView, Field
from feast.data_source import DataSource
from feast.types import Array, Bool, Float64, Int32, Int64

from salesforecast.feature_repo.entities import series, store
from salesforecast.feature_repo.sources import RECENT_WEEKS, STORE_RECENT_FEATURES, STORE_RECENT_WEEKS
from salesforecast.features.build import SALES_FEATURES

WEEK_TTL = timedelta(days=6)

# Store-week facts; all of them are known before the week's sales are.
STORE_FEATURES: dict[str, object] = {
    "store_type": Int32,
    "store_size": Int64,
    "temperature": Float64,
    "fuel_price": Float64,
    "cpi": Float64,
    "unemployment": Float64,
    "markdown1": Float64,
    "markdown2": Float64,
    "markdown3": Float64,
    "markdown4": Float64,
    "markdown5": Float64,
    "total_markdown": Float64,
    "has_markdown": Bool,
    "is_holiday": Bool,
    "holiday_type": Int32,
    "weeks_to_next_holiday": Int32,
}


def sales_history(source: DataSource) -> FeatureView:
    """Per series: lags and rolling statistics of weeks <= t-1, and the raw recent sales."""
    return FeatureView(
        name="sales_history",
        entities=[series],
        ttl=WEEK_TTL,
        schema=[
            Field(name="store_dept", dtype=Int64),
            *(Field(name=name, dtype=Float64) for name in SALES_FEATURES),
            Field(
                name="recent_sales",
                dtype=Array(Float64),
                description=f"Sales of weeks t-{RECENT_WEEKS - 1}..t, oldest first (week t: serving only)",
            ),
        ],
        source=source,
        online=True,
        description="Sales lags and rolling statistics per series (computed from weeks <= t-1).",
    )


def store_external(source: DataSource) -> FeatureView:
    """Per store: economy, markdowns, holidays, type and size."""
    return FeatureView(
        name="store_external",
        entities=[store],
        ttl=WEEK_TTL,
        schema=[
            Field(name="store", dtype=Int32),
            *(Field(name=name, dtype=dtype) for name, dtype in STORE_FEATURES.items()),  # type: ignore[arg-type]
            *(
                Field(
                    name=name,
                    dtype=Array(Float64),
                    description=f"Weeks t-{STORE_RECENT_WEEKS - 1}..t (as many as exist), oldest first: "
                    "serving only.",
                )
                for name in STORE_RECENT_FEATURES
            ),
        ],
        source=source,
        online=True,
        description="External store-week facts from features.csv and stores.csv.",
    )
