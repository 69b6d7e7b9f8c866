"""The Kaggle Walmart file schema: one declaration read by the loader, the validator and the generator."""

from __future__ import annotations

from typing import Literal

Kind = Literal["int", "float", "float_na", "date", "bool", "store_type"]

# Column name in the file -> (snake_case name in the product, kind of value expected).
SCHEMAS: dict[str, dict[str, tuple[str, Kind]]] = {
    "train": {
        "Store": ("store", "int"),
        "Dept": ("dept", "int"),
        "Date": ("date", "date"),
        "Weekly_Sales": ("weekly_sales", "float"),
        "IsHoliday": ("is_holiday", "bool"),
    },
    "features": {
        "Store": ("store", "int"),
        "Date": ("date", "date"),
        "Temperature": ("temperature", "float"),
        "Fuel_Price": ("fuel_price", "float"),
        "MarkDown1": ("markdown1", "float_na"),
        "MarkDown2": ("markdown2", "float_na"),
        "MarkDown3": ("markdown3", "float_na"),
        "MarkDown4": ("markdown4", "float_na"),
        "MarkDown5": ("markdown5", "float_na"),
        "CPI": ("cpi", "float_na"),
        "Unemployment": ("unemployment", "float_na"),
        "IsHoliday": ("is_holiday", "bool"),
    },
    "stores": {
        "Store": ("store", "int"),
        "Type": ("type", "store_type"),
        "Size": ("size", "int"),
    },
    "test": {
        "Store": ("store", "int"),
        "Dept": ("dept", "int"),
        "Date": ("date", "date"),
        "IsHoliday": ("is_holiday", "bool"),
    },
}

KEYS: dict[str, list[str]] = {
    "train": ["Store", "Dept", "Date"],
    "features": ["Store", "Date"],
    "stores": ["Store"],
    "test": ["Store", "Dept", "Date"],
}

# Valid ids. The series key is store * 1000 + dept (salesforecast.features.build.series_key), so a
# department over 999 would share its key with another store's series and silently replace it.
ID_RANGES: dict[str, tuple[int, int]] = {"store": (1, 9_999_999), "dept": (1, 999)}

REQUIRED = ("train", "features", "stores")
OPTIONAL = ("test",)
STORE_TYPES = ("A", "B", "C")
NA_TOKENS = ("NA", "")
MARKDOWNS = [f"markdown{i}" for i in range(1, 6)]
