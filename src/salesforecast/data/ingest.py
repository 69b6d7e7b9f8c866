"""Read the Kaggle files (.csv, .csv.gz, .zip or the Kaggle bundle) and validate them.

Every file is read as text first and converted column by column, so that a bad value is
reported with its file, line and column instead of surfacing later as a type error.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from salesforecast.data.schema import (
    ID_RANGES,
    KEYS,
    NA_TOKENS,
    OPTIONAL,
    REQUIRED,
    SCHEMAS,
    STORE_TYPES,
    Kind,
)
from salesforecast.errors import DataValidationError

TRUE_TOKENS = {"TRUE", "True", "true", "1"}
FALSE_TOKENS = {"FALSE", "False", "false", "0"}


@dataclass
class RawData:
    """The validated files as typed frames with snake_case columns."""

    train: pd.DataFrame
    features: pd.DataFrame
    stores: pd.DataFrame
    test: pd.DataFrame | None = None
    sources: dict[str, str] = field(default_factory=dict)


def _line(index: int) -> int:
    """File line of a data row: line 1 is the header."""
    return int(index) + 2


def _find_in_bundle(data_dir: Path, name: str) -> tuple[str, bytes] | None:
    for bundle in sorted(data_dir.glob("*.zip")):
        if bundle.stem in {name, f"{name}.csv"}:
            continue
        try:
            with zipfile.ZipFile(bundle) as zf:
                members = {Path(m).name: m for m in zf.namelist()}
                if f"{name}.csv" in members:
                    return f"{bundle}!{members[f'{name}.csv']}", zf.read(members[f"{name}.csv"])
                if f"{name}.csv.zip" in members:
                    inner = zf.read(members[f"{name}.csv.zip"])
                    label = f"{bundle}!{members[f'{name}.csv.zip']}"
                    return label, _read_zip_member(io.BytesIO(inner), label, name)
        except zipfile.BadZipFile as exc:
            raise DataValidationError(str(bundle), f"not a readable zip archive ({exc})") from exc
    return None


def _read_zip_member(source: io.BytesIO | Path, label: str, name: str) -> bytes:
    try:
        with zipfile.ZipFile(source) as zf:
            csvs = [m for m in zf.namelist() if m.endswith(".csv")]
            wanted = [m for m in csvs if Path(m).name == f"{name}.csv"] or csvs
            if len(wanted) != 1:
                raise DataValidationError(
                    label, f"archive holds {len(csvs)} CSV files", expected=f"one {name}.csv"
                )
            return zf.read(wanted[0])
    except zipfile.BadZipFile as exc:
        raise DataValidationError(label, f"not a readable zip archive ({exc})") from exc


def locate(data_dir: Path, name: str) -> tuple[str, bytes | Path] | None:
    """Find `name` as .csv, .csv.gz, .csv.zip or .zip, or inside a Kaggle bundle zip."""
    for suffix in (".csv", ".csv.gz"):
        path = data_dir / f"{name}{suffix}"
        if path.is_file():
            return str(path), path
    for suffix in (".csv.zip", ".zip"):
        path = data_dir / f"{name}{suffix}"
        if path.is_file():
            return str(path), _read_zip_member(path, str(path), name)
    return _find_in_bundle(data_dir, name)


def _read_text_frame(label: str, source: bytes | Path) -> pd.DataFrame:
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    compression = "gzip" if str(label).endswith(".gz") else None
    try:
        return pd.read_csv(
            handle,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            compression=compression,
            skipinitialspace=True,
        )
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError(label, "the file is empty", expected="a header row") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise DataValidationError(label, f"cannot be parsed as CSV ({exc})") from exc


def _first_bad(mask: np.ndarray | pd.Series) -> int | None:
    hits = np.flatnonzero(np.asarray(mask))
    return int(hits[0]) if hits.size else None


def _convert(label: str, column: str, values: pd.Series, kind: Kind) -> pd.Series:
    """Convert one text column to its type, naming the first bad value."""
    stripped = values.str.strip()
    if kind in ("int", "float", "float_na"):
        is_na = stripped.isin(NA_TOKENS)
        numbers = pd.to_numeric(stripped.where(~is_na), errors="coerce")
        bad = numbers.isna() & ~is_na if kind == "float_na" else numbers.isna()
        if kind == "int":
            bad |= numbers.notna() & (numbers != np.round(numbers))
        bad |= np.isinf(numbers.fillna(0.0))
        row = _first_bad(bad)
        if row is not None:
            expected = {"int": "an integer", "float": "a number", "float_na": "a number or NA"}
            raise DataValidationError(
                label,
                f"bad value {values.iloc[row]!r}",
                line=_line(row),
                column=column,
                expected=expected[kind],
            )
        return numbers.astype("int64") if kind == "int" else numbers.astype("float64")
    if kind == "date":
        dates = pd.to_datetime(stripped, format="%Y-%m-%d", errors="coerce")
        row = _first_bad(dates.isna())
        if row is not None:
            raise DataValidationError(
                label,
                f"bad date {values.iloc[row]!r}",
                line=_line(row),
                column=column,
                expected="a date as YYYY-MM-DD",
            )
        row = _first_bad(dates.dt.dayofweek != 4)
        if row is not None:
            raise DataValidationError(
                label,
                f"date {values.iloc[row]} is a {dates.iloc[row].day_name()}",
                line=_line(row),
                column=column,
                expected="weekly dates that fall on a Friday",
            )
        return dates
    if kind == "bool":
        is_true, is_false = stripped.isin(TRUE_TOKENS), stripped.isin(FALSE_TOKENS)
        row = _first_bad(~(is_true | is_false))
        if row is not None:
            raise DataValidationError(
                label,
                f"bad flag {values.iloc[row]!r}",
                line=_line(row),
                column=column,
                expected="TRUE or FALSE",
            )
        return is_true
    if kind == "store_type":
        row = _first_bad(~stripped.isin(STORE_TYPES))
        if row is not None:
            raise DataValidationError(
                label,
                f"bad store type {values.iloc[row]!r}",
                line=_line(row),
                column=column,
                expected="one of " + ", ".join(STORE_TYPES),
            )
        return stripped
    raise AssertionError(kind)


def parse(name: str, label: str, text: pd.DataFrame) -> pd.DataFrame:
    """Check the header, convert every column and reject duplicate keys."""
    schema = SCHEMAS[name]
    text.columns = [str(c).strip() for c in text.columns]
    missing = [c for c in schema if c not in text.columns]
    if missing:
        raise DataValidationError(
            label,
            f"missing column(s) {', '.join(missing)}; found {', '.join(text.columns)}",
            line=1,
            expected="the header " + ",".join(schema),
        )
    if text.empty:
        raise DataValidationError(label, "the file has a header but no data rows")
    keys = KEYS[name]
    duplicated = text.duplicated(keys, keep="first")
    row = _first_bad(duplicated)
    if row is not None:
        key = text.loc[row, keys].tolist()
        first = _first_bad((text[keys] == text.loc[row, keys]).all(axis=1))
        raise DataValidationError(
            label,
            f"duplicate key ({', '.join(keys)}) = ({', '.join(key)}), first seen on line {_line(first or 0)}",
            line=_line(row),
            expected="one row per " + ", ".join(keys),
        )
    out = pd.DataFrame(
        {snake: _convert(label, col, text[col], kind) for col, (snake, kind) in schema.items()}
    )
    for column, (snake, _) in schema.items():
        if snake in ID_RANGES:
            low, high = ID_RANGES[snake]
            row = _first_bad((out[snake] < low) | (out[snake] > high))
            if row is not None:
                raise DataValidationError(
                    label,
                    f"{snake} {out[snake].iloc[row]} is out of range",
                    line=_line(row),
                    column=column,
                    expected=f"an integer from {low} to {high:,}",
                )
    if name == "stores":
        row = _first_bad(out["size"] <= 0)
        if row is not None:
            raise DataValidationError(label, "store size must be positive", line=_line(row), column="Size")
    return out


def _check_weekly(label: str, dates: pd.Series) -> None:
    unique = np.sort(dates.unique())
    steps = np.diff(unique).astype("timedelta64[D]").astype(int)
    bad = _first_bad(steps != 7)
    if bad is not None:
        raise DataValidationError(
            label,
            f"the calendar jumps from {pd.Timestamp(unique[bad]).date()} to "
            f"{pd.Timestamp(unique[bad + 1]).date()}",
            column="Date",
            expected="consecutive weekly dates",
        )


def _check_cross(raw: RawData) -> None:
    """Rows of train (and test) must find their store in stores and their (store, date) in features."""
    labels = raw.sources
    store_ids = set(raw.stores["store"])
    feature_keys = raw.features[["store", "date", "is_holiday"]].rename(
        columns={"is_holiday": "features_is_holiday"}
    )
    for name in ("train", "test"):
        frame = getattr(raw, name)
        if frame is None:
            continue
        row = _first_bad(~frame["store"].isin(store_ids))
        if row is not None:
            raise DataValidationError(
                labels[name],
                f"store {frame['store'].iloc[row]} is not in {labels['stores']}",
                line=_line(row),
                column="Store",
                expected="a store listed in stores",
            )
        joined = frame[["store", "date", "is_holiday"]].merge(
            feature_keys, on=["store", "date"], how="left", validate="many_to_one"
        )
        row = _first_bad(joined["features_is_holiday"].isna())
        if row is not None:
            raise DataValidationError(
                labels[name],
                f"(Store, Date) = ({frame['store'].iloc[row]}, "
                f"{frame['date'].iloc[row].date()}) has no row in {labels['features']}",
                line=_line(row),
                expected="every (Store, Date) to appear in features",
            )
        row = _first_bad(joined["features_is_holiday"].astype(bool) != joined["is_holiday"])
        if row is not None:
            raise DataValidationError(
                labels[name],
                f"IsHoliday disagrees with {labels['features']} for "
                f"({frame['store'].iloc[row]}, {frame['date'].iloc[row].date()})",
                line=_line(row),
                column="IsHoliday",
                expected="the same holiday flag as features",
            )
    row = _first_bad(~raw.features["store"].isin(store_ids))
    if row is not None:
        raise DataValidationError(
            labels["features"],
            f"store {raw.features['store'].iloc[row]} is not in {labels['stores']}",
            line=_line(row),
            column="Store",
            expected="a store listed in stores",
        )


def data_directory(data_dir: Path | str) -> Path:
    """The data directory, or the error that names it: checked before anything lists it."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataValidationError(str(data_dir), "is not a directory", expected="a data directory")
    return data_dir


def load(data_dir: Path | str) -> RawData:
    """Read and validate every file; raises DataValidationError naming the first problem found."""
    data_dir = data_directory(data_dir)
    frames: dict[str, pd.DataFrame] = {}
    sources: dict[str, str] = {}
    for name in REQUIRED + OPTIONAL:
        found = locate(data_dir, name)
        if found is None:
            if name in OPTIONAL:
                continue
            raise DataValidationError(
                str(data_dir / f"{name}.csv"),
                "file not found",
                expected=f"{name}.csv, {name}.csv.gz, {name}.zip or a Kaggle bundle .zip",
            )
        label, source = found
        sources[name] = label
        frames[name] = parse(name, label, _read_text_frame(label, source))
    raw = RawData(sources=sources, **frames)
    _check_weekly(sources["train"], raw.train["date"])
    _check_weekly(sources["features"], raw.features["date"])
    _check_cross(raw)
    return raw


def summarize(raw: RawData) -> dict[str, object]:
    """The figures `data validate` prints: what a planner checks before trusting a data drop."""
    train = raw.train
    per_series = train.groupby(["store", "dept"]).size()
    n_weeks = train["date"].nunique()
    return {
        "rows": len(train),
        "stores": train["store"].nunique(),
        "departments": train["dept"].nunique(),
        "series": len(per_series),
        "complete_series": int((per_series == n_weeks).sum()),
        "weeks": n_weeks,
        "first_date": str(train["date"].min().date()),
        "last_date": str(train["date"].max().date()),
        "holiday_weeks": int(train.loc[train["is_holiday"], "date"].nunique()),
        "negative_sales_rows": int((train["weekly_sales"] < 0).sum()),
        "zero_sales_rows": int((train["weekly_sales"] == 0).sum()),
        "total_sales": round(float(train["weekly_sales"].sum()), 2),
        "feature_rows": len(raw.features),
        "test_rows": 0 if raw.test is None else len(raw.test),
    }
