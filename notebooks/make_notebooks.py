"""Write the three walkthrough notebooks (outputs are never committed; CI executes them).

    python notebooks/make_notebooks.py

Each notebook is a thin narrative over `salesforecast.pipeline`: no logic lives only here.
"""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent

SETUP = """from salesforecast import pipeline
from salesforecast.config import Settings

# Settings come from the environment: SALESFORECAST_DATA_DIR (the Kaggle files),
# SALESFORECAST_WORKDIR, SALESFORECAST_PROFILE (local or postgres), SALESFORECAST_PG_DSN.
settings = Settings()
if settings.data_dir is None:
    settings = settings.model_copy(update={"data_dir": pipeline.demo_data(settings)})
    print("No SALESFORECAST_DATA_DIR: using synthetic data in the Kaggle schema")
settings"""

NOTEBOOKS = {
    "01_data_preparation_feast_setup.ipynb": [
        (
            "md",
            "# 1. Data preparation and the Feast feature store\n\n"
            "Validate the Kaggle files, build the leak-free features into the offline store, "
            "register the Feast repository and pull a point-in-time training set.",
        ),
        ("code", SETUP),
        (
            "md",
            "## Validate the raw files\n"
            "A bad file stops here with a message naming the file, line and column.",
        ),
        ("code", "pipeline.validate(settings)"),
        ("md", "## Build the features\nEvery feature of week t uses sales up to week t-1 only."),
        ("code", "manifest = pipeline.build_features(settings)\nmanifest"),
        (
            "code",
            "from salesforecast.offline.store import read_feature_table\n\n"
            "sales = read_feature_table(settings, 'sales_features')\n"
            "sales.head()",
        ),
        (
            "code",
            "import matplotlib.pyplot as plt\n\n"
            "weekly = sales.groupby('date')['weekly_sales'].sum() / 1e6\n"
            "ax = weekly.plot(figsize=(10, 3), title='Total weekly sales (million $)')\n"
            "plt.show()",
        ),
        ("md", "## Register the Feast repository\n2 FeatureViews, 2 OnDemandFeatureViews, 1 FeatureService."),
        ("code", "pipeline.apply_feature_store(settings)"),
        (
            "md",
            "## Point-in-time training set\nWhole series are sampled, so training windows stay contiguous.",
        ),
        ("code", "frame = pipeline.training_set(settings)\nprint(frame.shape)\nframe.tail()"),
    ],
    "02_distributed_training.ipynb": [
        (
            "md",
            "# 2. Distributed training of the Temporal Fusion Transformer\n\n"
            "`pipeline.train` launches the DDP workers through `torch.distributed.run` "
            "(the same entry point a Kubeflow PyTorchJob or TrainJob runs).",
        ),
        ("code", "# parameters\nWORKERS = 2\nEPOCHS = 5\nSAMPLE_SIZE = 100_000\nWINDOWS_PER_EPOCH = 32_768"),
        ("code", SETUP),
        (
            "code",
            "summary = pipeline.train(settings, WORKERS, epochs=EPOCHS, sample_size=SAMPLE_SIZE,\n"
            "                         windows_per_epoch=WINDOWS_PER_EPOCH)\nsummary",
        ),
        (
            "md",
            "## Learning curves\nValidation weeks end before the test period; the seasonal-naive "
            "loss on the same windows is the bar to clear.",
        ),
        (
            "code",
            "import matplotlib.pyplot as plt\nimport pandas as pd\n\n"
            "log = pd.read_json(settings.artifacts_dir / 'training_log.jsonl', lines=True)\n"
            "ax = log.plot(x='epoch', y=['train_loss', 'val_loss', 'val_naive_loss'], figsize=(8, 3),\n"
            "              title='Pinball loss (scaled)')\nplt.show()\n"
            "log[['epoch', 'train_loss', 'val_loss', 'val_naive_loss', 'samples_per_s']]",
        ),
    ],
    "03_model_evaluation_inference.ipynb": [
        (
            "md",
            "# 3. Evaluation and real-time inference\n\n"
            "Score the TFT against the baselines on the last 39 weeks (never seen in training), "
            "then materialize the online store and forecast through the same path as the API.",
        ),
        ("code", SETUP),
        (
            "code",
            "import pandas as pd\n\n"
            "result = pipeline.evaluate(settings, 'holdout')\n"
            "scores = {name: entry['pooled'] for name, entry in result.result.summary().items()}\n"
            "pd.DataFrame(scores).T[['wmae', 'wape', 'mape', 'coverage_p10_p90']]",
        ),
        ("md", "MAPE is over rows with |actual| >= $1,000 only. The charts of the report:"),
        (
            "code",
            "from IPython.display import Image, display\n\n"
            "for png in sorted(settings.reports_dir.glob('*.png')):\n"
            "    print(png.name)\n    display(Image(filename=str(png)))",
        ),
        (
            "md",
            "## Online store and forecasts\nOne `get_online_features` call per request carries "
            "everything the model needs.",
        ),
        ("code", "pipeline.materialize(settings)"),
        ("code", "pipeline.forecast_sample(settings, n=3)"),
        (
            "code",
            "from fastapi.testclient import TestClient\n"
            "from salesforecast.serving.app import create_app\n"
            "from salesforecast.serving.predict import Forecaster\n\n"
            "client = TestClient(create_app(Forecaster(settings)))\n"
            "first = pipeline.forecast_sample(settings, n=1).iloc[0]\n"
            "client.post('/v1/forecast', json={'series': [{'store': int(first.store), "
            "'dept': int(first.dept)}], 'horizon': 4}).json()",
        ),
    ],
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = nbf.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [
            nbf.v4.new_markdown_cell(text) if kind == "md" else nbf.v4.new_code_cell(text)
            for kind, text in cells
        ]
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.source.startswith("# parameters"):
                cell.metadata["tags"] = ["parameters"]
        nbf.write(nb, HERE / name)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
