"""The two entities: a store, and one series per (store, dept) under a single integer key.

The series key is `store_dept = store * 1000 + dept` (see `salesforecast.features.build.series_key`).
A view is never keyed on (store, dept) as two columns: Feast 0.67's PostgreSQL offline store
builds its row id by concatenating key values without a separator, so (1, 11) and (11, 1) would
collide.
"""

from __future__ import annotations

from feast import Entity, ValueType

store = Entity(
    name="store",
    join_keys=["store"],
    value_type=ValueType.INT32,
    description="A Walmart store (1..45 in the Kaggle data).",
)

series = Entity(
    name="series",
    join_keys=["store_dept"],
    value_type=ValueType.INT64,
    description="One weekly sales series: store_dept = store * 1000 + dept.",
)
