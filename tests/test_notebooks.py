"""The three walkthrough notebooks execute top to bottom on a small slice of the real data."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from salesforecast.data.slice import write_slice

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ORDER = [
    "01_data_preparation_feast_setup.ipynb",
    "02_distributed_training.ipynb",
    "03_model_evaluation_inference.ipynb",
]
FAST = "WORKERS = 2\nEPOCHS = 1\nSAMPLE_SIZE = None\nWINDOWS_PER_EPOCH = 512"


def test_notebooks_run_in_order(real_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    write_slice(real_data_dir, data, [1, 2])  # stays in tmp: the data is never committed
    monkeypatch.setenv("SALESFORECAST_DATA_DIR", str(data))
    monkeypatch.setenv("SALESFORECAST_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("SALESFORECAST_PROFILE", "local")
    for name in ORDER:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), (
            f"{name}: outputs are not committed"
        )
        for cell in nb.cells:
            if "parameters" in cell.metadata.get("tags", []):
                cell.source = FAST
        resources = {"metadata": {"path": str(tmp_path)}}
        NotebookClient(nb, timeout=600, kernel_name="python3", resources=resources).execute()
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        images = [o for o in outputs if "image/png" in o.get("data", {})]
        assert images, f"{name}: expected charts inline"
