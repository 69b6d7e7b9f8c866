"""Submit the rendered training job through the official Kubeflow SDKs and follow its logs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from salesforecast.deploy import manifests as m
from salesforecast.errors import SalesForecastError


def _load_kube_config() -> None:
    from kubernetes import config

    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
        else:
            config.load_kube_config()
    except (config.ConfigException, FileNotFoundError, TypeError) as exc:
        kubeconfig = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
        raise SalesForecastError(
            f"no Kubernetes cluster configured: no usable kubeconfig at {kubeconfig} and not running "
            "in a pod ({exc}). Point KUBECONFIG at a cluster with the Kubeflow Training Operator "
            "(or Trainer v2) installed, apply the manifests of `salesforecast k8s render`, then retry"
        ) from exc


def submit_pytorchjob(cfg: m.ClusterConfig, log: Callable[[str], None], follow: bool = True) -> str:
    """Create the PyTorchJob with the kubeflow-training SDK and stream the master's log."""
    _load_kube_config()
    from kubeflow.training import TrainingClient
    from kubernetes.client import ApiClient

    manifest = m.pytorchjob(cfg)
    job = ApiClient().deserialize(_Response(manifest), "KubeflowOrgV1PyTorchJob")
    client = TrainingClient(namespace=cfg.namespace)
    try:
        client.create_job(job=job)
    except Exception as exc:  # the SDK wraps API errors in several types
        raise SalesForecastError(
            f"could not create PyTorchJob {manifest['metadata']['name']}: {exc}"
        ) from exc
    name = manifest["metadata"]["name"]
    log(f"created PyTorchJob {cfg.namespace}/{name}")
    if follow:
        client.get_job_logs(name, namespace=cfg.namespace, follow=True)
    return name


def submit_trainjob(cfg: m.ClusterConfig, log: Callable[[str], None], follow: bool = True) -> str:
    """Create a TrainJob on the `torch-distributed` runtime with the Kubeflow SDK (Trainer v2)."""
    _load_kube_config()
    from kubeflow.trainer import CustomTrainerContainer, KubernetesBackendConfig, TrainerClient

    client = TrainerClient(backend_config=KubernetesBackendConfig(namespace=cfg.namespace))
    env = {e["name"]: e["value"] for e in m.app_env(cfg) if "value" in e}
    resources = m.trainjob(cfg)["spec"]["trainer"]["resourcesPerNode"]["limits"]
    try:
        # The image's default command is `salesforecast train` (see Containerfile).
        name = client.train(
            runtime="torch-distributed",
            trainer=CustomTrainerContainer(
                image=cfg.image, num_nodes=cfg.workers, resources_per_node=resources, env=env
            ),
        )
    except Exception as exc:
        raise SalesForecastError(f"could not create the TrainJob: {exc}") from exc
    log(f"created TrainJob {cfg.namespace}/{name}")
    if follow:
        for line in client.get_job_logs(name, follow=True):
            log(line.rstrip())
    return name


class _Response:
    """The shape ApiClient.deserialize reads, so a manifest becomes the SDK's typed model."""

    def __init__(self, obj: m.Obj) -> None:
        import json

        self.data = json.dumps(obj)
