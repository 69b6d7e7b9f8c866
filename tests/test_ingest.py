"""Reading and validating the Kaggle files: formats, and one clear error per kind of bad input."""

from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from salesforecast.cli import app
from salesforecast.data.ingest import load, summarize
from salesforecast.errors import DataValidationError

runner = CliRunner()


@pytest.fixture
def data_dir(synth_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic files that a test may corrupt."""
    out = tmp_path / "data"
    shutil.copytree(synth_dir, out)
    return out


def _rewrite(path: Path, edit) -> None:
    lines = path.read_text().split("\n")
    path.write_text("\n".join(edit(lines)))


def test_synthetic_files_load_and_summarize(synth_dir: Path) -> None:
    raw = load(synth_dir)
    summary = summarize(raw)
    assert summary["stores"] == 5
    assert summary["series"] == 50
    assert summary["weeks"] == 143
    assert summary["holiday_weeks"] == 10
    assert raw.test is not None and len(raw.test) == 5 * 10 * 39
    assert list(raw.stores.columns) == ["store", "type", "size"]
    assert raw.train["weekly_sales"].dtype == "float64"
    assert raw.features["markdown1"].isna().any()


def test_stores_file_with_bare_cr_line_endings_is_read(synth_dir: Path) -> None:
    assert b"\n" not in (synth_dir / "stores.csv").read_bytes()
    assert len(load(synth_dir).stores) == 5


def test_gzip_zip_and_kaggle_bundle_are_read(synth_dir: Path, tmp_path: Path) -> None:
    expected = load(synth_dir).train
    gz = tmp_path / "gz"
    gz.mkdir()
    for name in ("train", "features", "stores"):
        with (synth_dir / f"{name}.csv").open("rb") as src, gzip.open(gz / f"{name}.csv.gz", "wb") as dst:
            dst.write(src.read())
    pd.testing.assert_frame_equal(load(gz).train, expected)

    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    # The Kaggle bundle nests train.csv.zip inside the archive and keeps stores.csv plain.
    inner = tmp_path / "train.csv.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        zf.write(synth_dir / "train.csv", "train.csv")
    with zipfile.ZipFile(bundle_dir / "walmart-recruiting-store-sales-forecasting.zip", "w") as zf:
        zf.write(inner, "train.csv.zip")
        zf.write(synth_dir / "features.csv", "features.csv")
        zf.write(synth_dir / "stores.csv", "stores.csv")
    raw = load(bundle_dir)
    pd.testing.assert_frame_equal(raw.train, expected)
    assert raw.sources["train"].endswith("!train.csv.zip")


def _error(data_dir: Path) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        load(data_dir)
    return info.value


def test_missing_file(data_dir: Path) -> None:
    (data_dir / "features.csv").unlink()
    err = _error(data_dir)
    assert err.file.endswith("features.csv") and "not found" in str(err)


def test_missing_column(data_dir: Path) -> None:
    _rewrite(data_dir / "train.csv", lambda ls: [ls[0].replace("Weekly_Sales", "Sales"), *ls[1:]])
    err = _error(data_dir)
    assert "Weekly_Sales" in err.problem and err.line == 1 and err.file.endswith("train.csv")


def test_bad_number_names_line_and_column(data_dir: Path) -> None:
    def edit(lines: list[str]) -> list[str]:
        parts = lines[5].split(",")
        parts[3] = "12x.5"
        lines[5] = ",".join(parts)
        return lines

    _rewrite(data_dir / "train.csv", edit)
    err = _error(data_dir)
    assert (err.line, err.column) == (6, "Weekly_Sales")
    assert "12x.5" in str(err) and "a number" in str(err)


def test_bad_integer_store(data_dir: Path) -> None:
    def edit(lines: list[str]) -> list[str]:
        lines[3] = "1.5" + lines[3][lines[3].index(",") :]
        return lines

    _rewrite(data_dir / "train.csv", edit)
    err = _error(data_dir)
    assert (err.line, err.column, err.expected) == (4, "Store", "an integer")


def test_bad_date_format(data_dir: Path) -> None:
    def edit(lines: list[str]) -> list[str]:
        parts = lines[9].split(",")
        parts[2] = "05/02/2010"
        lines[9] = ",".join(parts)
        return lines

    _rewrite(data_dir / "train.csv", edit)
    err = _error(data_dir)
    assert (err.line, err.column) == (10, "Date") and "YYYY-MM-DD" in str(err)


def test_date_not_a_friday(data_dir: Path) -> None:
    def edit(lines: list[str]) -> list[str]:
        parts = lines[2].split(",")
        parts[2] = "2010-02-06"
        lines[2] = ",".join(parts)
        return lines

    _rewrite(data_dir / "train.csv", edit)
    err = _error(data_dir)
    assert err.line == 3 and "Saturday" in str(err) and "Friday" in str(err)


def test_duplicate_key(data_dir: Path) -> None:
    _rewrite(data_dir / "train.csv", lambda ls: [*ls[:8], ls[2], *ls[8:]])
    err = _error(data_dir)
    assert err.line == 9 and "duplicate key" in str(err) and "line 3" in str(err)


def test_train_row_without_features_row(data_dir: Path) -> None:
    features = pd.read_csv(data_dir / "features.csv", dtype=str, keep_default_na=False)
    features = features[~((features["Store"] == "2") & (features["Date"] == "2010-03-05"))]
    features.to_csv(data_dir / "features.csv", index=False)
    err = _error(data_dir)
    assert err.file.endswith("train.csv") and "(2, 2010-03-05)" in str(err)
    assert "has no row in" in str(err) and err.line is not None


def test_bad_holiday_flag(data_dir: Path) -> None:
    _rewrite(data_dir / "features.csv", lambda ls: [ls[0], ls[1].rsplit(",", 1)[0] + ",yes", *ls[2:]])
    err = _error(data_dir)
    assert (err.line, err.column) == (2, "IsHoliday") and "TRUE or FALSE" in str(err)


def test_bad_store_type(data_dir: Path) -> None:
    text = (data_dir / "stores.csv").read_bytes().decode()
    lines = text.split("\r")
    lines[1] = lines[1].split(",")[0] + ",Z," + lines[1].split(",")[2]
    (data_dir / "stores.csv").write_bytes("\r".join(lines).encode())
    err = _error(data_dir)
    assert (err.line, err.column) == (2, "Type") and "'Z'" in str(err)


def test_empty_file(data_dir: Path) -> None:
    (data_dir / "stores.csv").write_text("")
    assert "empty" in str(_error(data_dir))


def test_header_only(data_dir: Path) -> None:
    (data_dir / "train.csv").write_text("Store,Dept,Date,Weekly_Sales,IsHoliday\n")
    assert "no data rows" in str(_error(data_dir))


def test_missing_week_in_calendar(data_dir: Path) -> None:
    train = pd.read_csv(data_dir / "train.csv", dtype=str, keep_default_na=False)
    train[train["Date"] != "2010-06-04"].to_csv(data_dir / "train.csv", index=False)
    err = _error(data_dir)
    assert "2010-05-28 to 2010-06-11" in str(err)


def test_cli_prints_one_clear_line_without_traceback(data_dir: Path) -> None:
    _rewrite(data_dir / "train.csv", lambda ls: [*ls[:8], ls[2], *ls[8:]])
    result = runner.invoke(app, ["data", "validate", "--data-dir", str(data_dir)])
    assert result.exit_code == 2
    assert "duplicate key" in result.output and "train.csv" in result.output
    assert "Traceback" not in result.output


def test_cli_validate_prints_summary(synth_dir: Path) -> None:
    result = runner.invoke(app, ["data", "validate", "--data-dir", str(synth_dir)], terminal_width=200)
    assert result.exit_code == 0, result.output
    for label in ("rows", "stores", "departments", "series", "first date", "holiday weeks"):
        assert label in result.output


@pytest.mark.parametrize(("value", "line"), [("1001", 3), ("-4", 3), ("0", 3)])
def test_dept_outside_the_series_key_range_is_refused(data_dir: Path, value: str, line: int) -> None:
    """Dept 1001 of store 1 would share store 2 dept 1's key (store * 1000 + dept) and vanish."""

    def edit(lines: list[str]) -> list[str]:
        parts = lines[line - 1].split(",")
        parts[1] = value
        lines[line - 1] = ",".join(parts)
        return lines

    _rewrite(data_dir / "train.csv", edit)
    err = _error(data_dir)
    assert (err.line, err.column) == (line, "Dept") and "from 1 to 999" in err.expected


def test_negative_store_in_stores_file_is_refused_there(data_dir: Path) -> None:
    _rewrite(data_dir / "stores.csv", lambda ls: [ls[0], "-" + ls[1], *ls[2:]])
    err = _error(data_dir)
    assert err.file.endswith("stores.csv") and (err.line, err.column) == (2, "Store")
