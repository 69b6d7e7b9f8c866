"""Kubernetes objects for a cluster run: PostgreSQL, the Feast config, data preparation, DDP
training (Kubeflow PyTorchJob and TrainJob), a KubeRay cluster, and the forecasting API.

Plain dictionaries, one builder per object, so `k8s render` writes YAML that `kubectl apply`
takes as it is. Every pod gets the same settings through the environment; the database password
only ever comes from the generated Secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

APP = "salesforecast"
PG_NAME = f"{APP}-postgres"
PG_SECRET = f"{APP}-postgres"
PG_INIT = f"{APP}-postgres-init"
FEAST_CONFIG = f"{APP}-feature-store"
SHARED_PVC = f"{APP}-shared"
SHARED_MOUNT = "/shared"
PG_USER = "feast"
FEAST_DATABASES = ("feast_registry", "feast_offline", "feast_online")


@dataclass
class ClusterConfig:
    """What `salesforecast k8s render` asks for; every field has a flag."""

    namespace: str = "salesforecast"
    image: str = "ghcr.io/salesforecast/salesforecast:0.1.0"
    workers: int = 2  # training pods (1 master + workers-1 workers)
    procs_per_node: int = 1
    cpu: str = "2"
    memory: str = "8Gi"
    gpus: int = 0
    epochs: int = 20
    storage: str = "20Gi"
    storage_class: str | None = None
    pg_storage: str = "10Gi"
    ray_workers: int = 2
    serve_replicas: int = 2
    pg_password: str = field(default="", repr=False)

    @property
    def pg_host(self) -> str:
        return f"{PG_NAME}.{self.namespace}.svc.cluster.local"


def _meta(name: str, cfg: ClusterConfig, component: str, **extra: Any) -> Obj:
    return {
        "name": name,
        "namespace": cfg.namespace,
        "labels": {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component},
        **extra,
    }


def _secret_env(name: str, key: str) -> Obj:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": PG_SECRET, "key": key}}}


def app_env(cfg: ClusterConfig) -> list[Obj]:
    """Settings every salesforecast pod reads (see `salesforecast.config.Settings`)."""
    return [
        {"name": "SALESFORECAST_PROFILE", "value": "postgres"},
        {"name": "SALESFORECAST_WORKDIR", "value": f"{SHARED_MOUNT}/work"},
        {"name": "SALESFORECAST_DATA_DIR", "value": f"{SHARED_MOUNT}/data"},
        {"name": "SALESFORECAST_PG_DSN", "value": f"postgresql://{PG_USER}@{cfg.pg_host}:5432/feast_offline"},
        {"name": "SALESFORECAST_FEAST_CONFIG", "value": "/etc/salesforecast/feature_store.yaml"},
        _secret_env("PGPASSWORD", "POSTGRES_PASSWORD"),
        _secret_env("SALESFORECAST_PG_PASSWORD", "POSTGRES_PASSWORD"),
    ]


def _resources(cfg: ClusterConfig) -> Obj:
    limits: Obj = {"cpu": cfg.cpu, "memory": cfg.memory}
    if cfg.gpus:
        limits["nvidia.com/gpu"] = str(cfg.gpus)
    return {"requests": {"cpu": cfg.cpu, "memory": cfg.memory}, "limits": limits}


def _volumes(with_config: bool = True) -> list[Obj]:
    volumes: list[Obj] = [{"name": "shared", "persistentVolumeClaim": {"claimName": SHARED_PVC}}]
    if with_config:
        volumes.append({"name": "feast-config", "configMap": {"name": FEAST_CONFIG}})
    return volumes


def _mounts(with_config: bool = True) -> list[Obj]:
    mounts: list[Obj] = [{"name": "shared", "mountPath": SHARED_MOUNT}]
    if with_config:
        mounts.append({"name": "feast-config", "mountPath": "/etc/salesforecast", "readOnly": True})
    return mounts


def _container(cfg: ClusterConfig, name: str, command: list[str], **extra: Any) -> Obj:
    return {
        "name": name,
        "image": cfg.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "env": app_env(cfg),
        "volumeMounts": _mounts(),
        "resources": _resources(cfg),
        **extra,
    }


# --- PostgreSQL -------------------------------------------------------------------------------


def postgres_secret(cfg: ClusterConfig) -> Obj:
    if not cfg.pg_password:
        raise ValueError("a generated password is required")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(PG_SECRET, cfg, "database"),
        "type": "Opaque",
        "stringData": {"POSTGRES_USER": PG_USER, "POSTGRES_PASSWORD": cfg.pg_password},
    }


def postgres_init(cfg: ClusterConfig) -> Obj:
    # The image creates POSTGRES_DB itself; the script adds the other two Feast databases.
    others = [db for db in FEAST_DATABASES if db != "feast_offline"]
    script = "\n".join(f"CREATE DATABASE {db} OWNER {PG_USER};" for db in others)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(PG_INIT, cfg, "database"),
        "data": {"init.sql": script + "\n"},
    }


def postgres_service(cfg: ClusterConfig) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(PG_NAME, cfg, "database"),
        "spec": {
            "selector": {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": "database"},
            "ports": [{"name": "postgres", "port": 5432, "targetPort": 5432}],
        },
    }


def postgres_statefulset(cfg: ClusterConfig) -> Obj:
    labels = {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": "database"}
    probe = {
        "exec": {"command": ["sh", "-c", f"pg_isready -U {PG_USER} -d feast_offline -h 127.0.0.1"]},
        "initialDelaySeconds": 5,
        "periodSeconds": 5,
    }
    claim: Obj = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": cfg.pg_storage}}},
    }
    if cfg.storage_class:
        claim["spec"]["storageClassName"] = cfg.storage_class
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(PG_NAME, cfg, "database"),
        "spec": {
            "serviceName": PG_NAME,
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "postgres",
                            "image": "postgres:16",
                            "ports": [{"containerPort": 5432, "name": "postgres"}],
                            "env": [
                                _secret_env("POSTGRES_USER", "POSTGRES_USER"),
                                _secret_env("POSTGRES_PASSWORD", "POSTGRES_PASSWORD"),
                                {"name": "POSTGRES_DB", "value": "feast_offline"},
                                {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                            ],
                            "volumeMounts": [
                                {"name": "data", "mountPath": "/var/lib/postgresql/data"},
                                {"name": "init", "mountPath": "/docker-entrypoint-initdb.d"},
                            ],
                            "readinessProbe": probe,
                            "livenessProbe": {**probe, "initialDelaySeconds": 30, "periodSeconds": 20},
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "1Gi"},
                                "limits": {"cpu": "2", "memory": "4Gi"},
                            },
                        }
                    ],
                    "volumes": [{"name": "init", "configMap": {"name": PG_INIT}}],
                },
            },
            "volumeClaimTemplates": [claim],
        },
    }


# --- Shared storage, Feast config and data preparation ----------------------------------------


def shared_pvc(cfg: ClusterConfig) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": cfg.storage}}}
    if cfg.storage_class:
        spec["storageClassName"] = cfg.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(SHARED_PVC, cfg, "storage"),
        "spec": spec,
    }


def feature_store_configmap(cfg: ClusterConfig, configs: dict[str, str]) -> Obj:
    """`configs`: file name -> feature_store.yaml text (the default and the Ray variant)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(FEAST_CONFIG, cfg, "feature-store"),
        "data": configs,
    }


def data_prep_job(cfg: ClusterConfig) -> Obj:
    script = "salesforecast data validate && salesforecast features build && salesforecast features apply"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(f"{APP}-data-prep", cfg, "data-prep"),
        "spec": {
            "backoffLimit": 2,
            "template": {
                "metadata": {
                    "labels": {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": "data-prep"}
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [_container(cfg, "data-prep", ["sh", "-c", script])],
                    "volumes": _volumes(),
                },
            },
        },
    }


# --- Distributed training ---------------------------------------------------------------------


def train_command(cfg: ClusterConfig) -> list[str]:
    """The same entry point as on a laptop; the operator's MASTER_ADDR/RANK/PET_* env does the rest."""
    return ["salesforecast", "train", "--epochs", str(cfg.epochs)]


def _train_pod(cfg: ClusterConfig) -> Obj:
    container = _container(cfg, "pytorch", train_command(cfg))
    container["env"] = [*container["env"], {"name": "OMP_NUM_THREADS", "value": "1"}]
    return {
        "metadata": {"labels": {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": "training"}},
        "spec": {"containers": [container], "volumes": _volumes()},
    }


def pytorchjob(cfg: ClusterConfig) -> Obj:
    specs: Obj = {"Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": _train_pod(cfg)}}
    if cfg.workers > 1:
        specs["Worker"] = {
            "replicas": cfg.workers - 1,
            "restartPolicy": "OnFailure",
            "template": _train_pod(cfg),
        }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": _meta(f"{APP}-train", cfg, "training"),
        "spec": {
            "nprocPerNode": str(cfg.procs_per_node),
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 3},
            "pytorchReplicaSpecs": specs,
        },
    }


def trainjob(cfg: ClusterConfig) -> Obj:
    container = _container(cfg, "trainer", train_command(cfg))
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": _meta(f"{APP}-trainjob", cfg, "training"),
        "spec": {
            "runtimeRef": {
                "apiGroup": "trainer.kubeflow.org",
                "kind": "ClusterTrainingRuntime",
                "name": "torch-distributed",
            },
            "trainer": {
                "image": cfg.image,
                "command": container["command"],
                "env": [*container["env"], {"name": "OMP_NUM_THREADS", "value": "1"}],
                "numNodes": cfg.workers,
                "numProcPerNode": cfg.procs_per_node,
                "resourcesPerNode": container["resources"],
            },
            # Mount the shared volume and the Feast config into the runtime's `node` pods.
            "runtimePatches": [
                {
                    "manager": APP,
                    "trainingRuntimeSpec": {
                        "template": {
                            "spec": {
                                "replicatedJobs": [
                                    {
                                        "name": "node",
                                        "template": {
                                            "spec": {
                                                "template": {
                                                    "spec": {
                                                        "volumes": _volumes(),
                                                        "containers": [
                                                            {"name": "node", "volumeMounts": _mounts()}
                                                        ],
                                                    }
                                                }
                                            }
                                        },
                                    }
                                ]
                            }
                        }
                    },
                }
            ],
        },
    }


# --- Ray ----------------------------------------------------------------------------------------


def ray_cluster(cfg: ClusterConfig) -> Obj:
    def group(name: str) -> Obj:
        return {
            "spec": {
                "containers": [
                    {
                        "name": name,
                        "image": cfg.image,
                        "env": app_env(cfg),
                        "volumeMounts": _mounts(),
                        "resources": {
                            "requests": {"cpu": cfg.cpu, "memory": cfg.memory},
                            "limits": {"cpu": cfg.cpu, "memory": cfg.memory},
                        },
                    }
                ],
                "volumes": _volumes(),
            }
        }

    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": _meta(f"{APP}-ray", cfg, "ray"),
        "spec": {
            "headGroupSpec": {
                "rayStartParams": {"dashboard-host": "127.0.0.1", "num-cpus": "0"},
                "template": group("ray-head"),
            },
            "workerGroupSpecs": [
                {
                    "groupName": "workers",
                    "replicas": cfg.ray_workers,
                    "minReplicas": 1,
                    "maxReplicas": max(cfg.ray_workers, 1) * 2,
                    "rayStartParams": {},
                    "template": group("ray-worker"),
                }
            ],
        },
    }


# --- Serving ------------------------------------------------------------------------------------


def serving_deployment(cfg: ClusterConfig) -> Obj:
    labels = {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": "api"}
    container = _container(
        cfg,
        "api",
        # Inside a pod the API must listen on the pod's address; on a laptop it binds 127.0.0.1.
        ["salesforecast", "serve", "--host", "0.0.0.0", "--port", "8000"],
        ports=[{"containerPort": 8000, "name": "http"}],
        readinessProbe={"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
        livenessProbe={
            "httpGet": {"path": "/healthz", "port": "http"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
        },
    )
    container["resources"] = {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(f"{APP}-api", cfg, "api"),
        "spec": {
            "replicas": cfg.serve_replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container], "volumes": _volumes()},
            },
        },
    }


def serving_service(cfg: ClusterConfig) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(f"{APP}-api", cfg, "api"),
        "spec": {
            "selector": {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": "api"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def serving_hpa(cfg: ClusterConfig) -> Obj:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(f"{APP}-api", cfg, "api"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{APP}-api"},
            "minReplicas": cfg.serve_replicas,
            "maxReplicas": cfg.serve_replicas * 5,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }


def namespace(cfg: ClusterConfig) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cfg.namespace}}
