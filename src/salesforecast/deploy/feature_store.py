"""The Feast `feature_store.yaml` for the cluster, made by the same generator as on a laptop."""

from __future__ import annotations

import yaml

from salesforecast.config import Profile, Settings
from salesforecast.deploy.manifests import APP, PG_USER, SHARED_MOUNT, ClusterConfig


def cluster_feature_store_configs(cfg: ClusterConfig) -> dict[str, str]:
    """`feature_store.yaml` (PostgreSQL everywhere) and `feature_store_ray.yaml` (KubeRay engine).

    The password stays `${SALESFORECAST_PG_PASSWORD}`: pods get it from the Secret.
    """
    from salesforecast.featurestore.config import Compute, StoreOptions, _Dumper, feature_store_config

    settings = Settings(
        profile=Profile.postgres,
        workdir=f"{SHARED_MOUNT}/work",
        pg_dsn=f"postgresql://{PG_USER}@{cfg.pg_host}:5432/feast_offline?sslmode=disable",
    )
    ray_head = f"ray://{APP}-ray-head-svc.{cfg.namespace}.svc.cluster.local:10001"
    variants = {
        "feature_store.yaml": StoreOptions(),
        "feature_store_ray.yaml": StoreOptions(compute=Compute.ray, ray_address=ray_head),
    }
    return {
        name: yaml.dump(feature_store_config(settings, options), Dumper=_Dumper, sort_keys=False)
        for name, options in variants.items()
    }
