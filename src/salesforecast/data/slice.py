"""Cut a few stores out of a Kaggle data directory: a fast, real-data playground for notebooks and tests.

The slice is written locally (never into the repository): the Kaggle licence forbids redistribution.
"""

from __future__ import annotations

from pathlib import Path

from salesforecast.data.ingest import _read_text_frame, locate
from salesforecast.data.schema import OPTIONAL, REQUIRED
from salesforecast.errors import DataValidationError
from salesforecast.offline.files import atomic_write


def write_slice(data_dir: Path, out_dir: Path, stores: list[int]) -> dict[str, Path]:
    """Copy the rows of `stores` from every Kaggle file, values untouched."""
    wanted = {str(s) for s in stores}
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name in REQUIRED + OPTIONAL:
        found = locate(data_dir, name)
        if found is None:
            if name in OPTIONAL:
                continue
            raise DataValidationError(str(data_dir / f"{name}.csv"), "file not found")
        label, source = found
        frame = _read_text_frame(label, source)
        if "Store" not in frame.columns:
            raise DataValidationError(label, "missing column Store", line=1)
        part = frame[frame["Store"].str.strip().isin(wanted)]
        if part.empty:
            raise DataValidationError(label, f"none of the stores {sorted(stores)} appear in the file")
        text = part.to_csv(index=False)
        written[name] = atomic_write(out_dir / f"{name}.csv", lambda tmp, t=text: tmp.write_text(t))
    return written
