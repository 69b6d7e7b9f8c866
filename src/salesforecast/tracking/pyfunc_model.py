"""The registered model's code (MLflow "models from code"): series keys in, P10/P50/P90 out.

MLflow copies this file into the logged model and runs it when the model is loaded, so nothing
is pickled. `predict` goes through `serving.predict.Forecaster`, the one prediction path: the
weights come from the logged `best_model.pt`, the features from the online store of the work
directory named by the `SALESFORECAST_*` settings (`SALESFORECAST_WORKDIR`, the profile, ...).
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

OUTPUT_COLUMNS = ["store", "dept", "h", "date", "p10", "p50", "p90"]


class SalesForecastTFT(PythonModel):
    def load_context(self, context: Any) -> None:
        self.bundle = context.artifacts["bundle"]
        self.forecaster: Any = None

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from pathlib import Path

        from salesforecast.config import Settings
        from salesforecast.serving.predict import Forecaster

        if self.forecaster is None:
            self.forecaster = Forecaster(Settings(), path=Path(self.bundle))
        frame = pd.DataFrame(model_input)
        keys = list(zip(frame["store"].astype(int), frame["dept"].astype(int), strict=True))
        horizon = int((params or {}).get("horizon") or 0) or None
        return self.forecaster.forecast_frame(keys, horizon)[OUTPUT_COLUMNS]


mlflow.models.set_model(SalesForecastTFT())
