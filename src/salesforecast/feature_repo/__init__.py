"""The declarative Feast repository: entities, sources, views, on-demand views and the service.

`build_repo(sources)` returns every object; the profile only chooses the sources
(`postgres_sources()` or `parquet_sources(...)`), the definitions are shared. The `feast` command
line reads them through the small `definitions.py` that `salesforecast features apply` writes next
to the generated `feature_store.yaml`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from feast import Entity, FeatureService, FeatureView, Project, RequestSource
from feast.data_source import DataSource
from feast.on_demand_feature_view import OnDemandFeatureView

from salesforecast.feature_repo import entities, on_demand, services, views
from salesforecast.feature_repo.sources import Sources, parquet_sources, postgres_sources

PROJECT = "salesforecast"


@dataclass(frozen=True)
class Repo:
    """Every Feast object of the project, by the name it has in the registry."""

    project: Project
    store: Entity
    series: Entity
    sales_features: DataSource
    store_features: DataSource
    forecast_week: RequestSource
    sales_history: FeatureView
    store_external: FeatureView
    seasonality: OnDemandFeatureView
    promotion: OnDemandFeatureView
    demand_forecasting: FeatureService

    def objects(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def build_repo(sources: Sources) -> Repo:
    sales_history = views.sales_history(sources.sales)
    store_external = views.store_external(sources.store)
    seasonality = on_demand.seasonality()
    # Only the scalar store-week facts: the serving-only arrays must not become inputs of training.
    promotion = on_demand.promotion(store_external[list(views.STORE_FEATURES)])
    return Repo(
        project=Project(name=PROJECT, description="Weekly sales forecasts for every store and department."),
        store=entities.store,
        series=entities.series,
        sales_features=sources.sales,
        store_features=sources.store,
        forecast_week=on_demand.forecast_week,
        sales_history=sales_history,
        store_external=store_external,
        seasonality=seasonality,
        promotion=promotion,
        demand_forecasting=services.demand_forecasting(sales_history, store_external, seasonality, promotion),
    )


__all__ = ["PROJECT", "Repo", "Sources", "build_repo", "parquet_sources", "postgres_sources"]
