"""The one feature service that training and serving both use."""

from __future__ import annotations

from feast import FeatureService, FeatureView
from feast.on_demand_feature_view import OnDemandFeatureView

from salesforecast.feature_repo.sources import STORE_RECENT_FEATURES
from salesforecast.feature_repo.views import STORE_FEATURES
from salesforecast.features.build import SALES_FEATURES

SERVICE_NAME = "demand_forecasting"

# Served next to the service, never inside it: `recent_sales` holds week t's own sales (the label);
# the store arrays are the encoder window's past covariates, which training reads row by row.
SERVING_ONLY_FEATURES = (
    "sales_history:recent_sales",
    *(f"store_external:{name}" for name in STORE_RECENT_FEATURES),
)


def demand_forecasting(
    sales_history: FeatureView,
    store_external: FeatureView,
    seasonality: OnDemandFeatureView,
    promotion: OnDemandFeatureView,
) -> FeatureService:
    return FeatureService(
        name=SERVICE_NAME,
        features=[
            sales_history[list(SALES_FEATURES)],
            store_external[list(STORE_FEATURES)],
            seasonality,
            promotion,
        ],
        description=(
            "Features of the demand forecaster. The target of week t (weekly_sales) comes with the "
            "entity rows in training and is never a feature; recent_sales is requested beside the "
            "service at serving time."
        ),
    )
