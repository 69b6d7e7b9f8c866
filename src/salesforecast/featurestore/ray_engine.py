"""Feast's Ray batch engine (`ray.engine`), with the TTL trap of Feast 0.67 materialization removed.

Feast 0.67's `RayFilterNode`, when it has no entity timestamps to compare with (materialization),
keeps only rows newer than `datetime.now() - ttl`. On 2010-2012 data with a 6-day TTL that filter
drops every row, and the job still reports success with an empty online store. Feast's local engine
applies no TTL when it materializes. This engine hands Ray a copy of the view without a TTL, so
both engines write the same rows; retrieval and the registry keep the TTL.

Select it in `feature_store.yaml` with
`batch_engine: {type: salesforecast.featurestore.ray_engine.PointInTimeRayComputeEngine, ...}`;
it accepts every option of `ray.engine`.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import timedelta
from typing import Any, Literal

from feast.infra.common.materialization_job import MaterializationJob, MaterializationTask
from feast.infra.compute_engines.ray.compute import RayComputeEngine
from feast.infra.compute_engines.ray.config import RayComputeEngineConfig

ENGINE_TYPE = "salesforecast.featurestore.ray_engine.PointInTimeRayComputeEngine"


class PointInTimeRayComputeEngineConfig(RayComputeEngineConfig):
    type: Literal["salesforecast.featurestore.ray_engine.PointInTimeRayComputeEngine"] = ENGINE_TYPE  # type: ignore[assignment]


class PointInTimeRayComputeEngine(RayComputeEngine):
    def _materialize_one(self, registry: Any, task: MaterializationTask, **kwargs: Any) -> MaterializationJob:
        view = copy.copy(task.feature_view)
        view.ttl = timedelta(0)  # Feast's "no TTL"
        return super()._materialize_one(registry, dataclasses.replace(task, feature_view=view), **kwargs)
