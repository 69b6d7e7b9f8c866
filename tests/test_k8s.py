"""The cluster manifests parse, validate against the official models, and keep secrets secret."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from kubeflow.training.api_client import ApiClient as KubeflowApiClient
from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob
from kubernetes.client import ApiClient

from salesforecast.deploy import manifests as m
from salesforecast.deploy.render import load_documents, render

K8S_MODELS = {
    "Namespace": "V1Namespace",
    "Secret": "V1Secret",
    "ConfigMap": "V1ConfigMap",
    "Service": "V1Service",
    "StatefulSet": "V1StatefulSet",
    "PersistentVolumeClaim": "V1PersistentVolumeClaim",
    "Job": "V1Job",
    "Deployment": "V1Deployment",
    "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
}
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
FEAST_YAML = {"feature_store.yaml": "project: salesforecast\npassword: ${SALESFORECAST_PG_PASSWORD}\n"}


class _Response:
    def __init__(self, obj: Any) -> None:
        self.data = json.dumps(obj)


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def _round_trip(client: Any, obj: dict, model: str) -> None:
    """Deserialize into the typed model (required fields checked) and back: unknown or misspelled
    fields would be dropped on the way, so the result must equal the input."""
    typed = client.deserialize(_Response(obj), model)
    assert _strip_none(client.sanitize_for_serialization(typed)) == obj, model


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("k8s")
    render(m.ClusterConfig(namespace="forecasting", image="registry.local/sf:1", workers=3), out, FEAST_YAML)
    return out, load_documents(out)


def test_every_object_validates_against_the_official_models(rendered) -> None:
    _, docs = rendered
    kinds = [d["kind"] for d in docs]
    for kind in [*K8S_MODELS, "PyTorchJob", "TrainJob", "RayCluster"]:
        assert kind in kinds, kind
    core = ApiClient()
    for doc in docs:
        if doc["kind"] in K8S_MODELS:
            _round_trip(core, doc, K8S_MODELS[doc["kind"]])
        elif doc["kind"] == "PyTorchJob":
            _round_trip(KubeflowApiClient(), doc, "KubeflowOrgV1PyTorchJob")
        elif doc["kind"] == "TrainJob":
            typed = TrainerV1alpha1TrainJob.from_dict(doc)  # strict pydantic model
            assert _strip_none(typed.to_dict()) == doc  # unknown fields would be lost
            assert doc["spec"]["runtimeRef"]["name"] == "torch-distributed"
            assert doc["spec"]["trainer"]["numNodes"] == 3
        elif doc["kind"] == "RayCluster":
            assert doc["apiVersion"] == "ray.io/v1"
            spec = doc["spec"]
            templates = [spec["headGroupSpec"]["template"]] + [
                g["template"] for g in spec["workerGroupSpecs"]
            ]
            for template in templates:
                _round_trip(core, template, "V1PodTemplateSpec")
            assert all(g["groupName"] and g["replicas"] >= 1 for g in spec["workerGroupSpecs"])


def test_required_fields_and_names(rendered) -> None:
    _, docs = rendered
    for doc in docs:
        assert doc["apiVersion"] and doc["kind"]
        name = doc["metadata"]["name"]
        assert len(name) <= 63 and DNS_1035.match(name), name
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "forecasting"


def test_pytorchjob_has_master_and_workers_running_the_train_entry_point(rendered) -> None:
    _, docs = rendered
    job = next(d for d in docs if d["kind"] == "PyTorchJob")
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert specs["Master"]["replicas"] == 1 and specs["Worker"]["replicas"] == 2
    assert job["spec"]["nprocPerNode"] == "1"
    for spec in specs.values():
        container = spec["template"]["spec"]["containers"][0]
        assert container["name"] == "pytorch"  # the operator injects its env into this container
        assert container["command"][:2] == ["salesforecast", "train"]
        env = {e["name"] for e in container["env"]}
        assert {"SALESFORECAST_PROFILE", "SALESFORECAST_WORKDIR", "OMP_NUM_THREADS"} <= env
        # The operator sets the rendezvous variables; a manifest must not override them.
        assert not env & {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK"}
        assert not any(name.startswith("PET_") for name in env)


def test_password_only_in_the_generated_secret(rendered, tmp_path: Path) -> None:
    out, docs = rendered
    secret = next(d for d in docs if d["kind"] == "Secret")
    password = secret["stringData"]["POSTGRES_PASSWORD"]
    assert len(password) >= 24
    holders = [p.name for p in out.glob("*.yaml") if password in p.read_text()]
    assert holders == ["10-postgres.yaml"]
    other_docs = [d for d in load_documents(out) if d["kind"] != "Secret"]
    assert password not in json.dumps(other_docs)
    # A re-render keeps the password (a running database keeps working); a new folder gets a new one.
    render(m.ClusterConfig(namespace="forecasting"), out, FEAST_YAML)
    again = next(d for d in load_documents(out) if d["kind"] == "Secret")
    assert again["stringData"]["POSTGRES_PASSWORD"] == password
    fresh = tmp_path / "fresh"
    render(m.ClusterConfig(namespace="forecasting"), fresh, FEAST_YAML)
    other = next(d for d in load_documents(fresh) if d["kind"] == "Secret")
    assert other["stringData"]["POSTGRES_PASSWORD"] != password


def test_postgres_creates_the_three_feast_databases(rendered) -> None:
    _, docs = rendered
    init = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == m.PG_INIT)
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    env = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    created = set(re.findall(r"CREATE DATABASE (\w+)", init["data"]["init.sql"])) | {
        env["POSTGRES_DB"]["value"]
    }
    assert created == set(m.FEAST_DATABASES)
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    assert "readinessProbe" in sts["spec"]["template"]["spec"]["containers"][0]


def test_serving_probes_and_gpu_flag() -> None:
    cfg = m.ClusterConfig(gpus=1)
    deployment = m.serving_deployment(cfg)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    train = m.pytorchjob(cfg)["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    assert train["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert (
        "nvidia.com/gpu"
        not in m.pytorchjob(m.ClusterConfig())["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"][
            "containers"
        ][0]["resources"]["limits"]
    )


def test_the_rendered_training_command_trains_as_master_and_worker(rendered, synth_dir, tmp_path) -> None:
    """Run the PyTorchJob's Master and Worker commands as two local processes, with the environment
    the Training Operator gives its pods (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK)."""
    import os
    import socket
    import subprocess
    import sys

    from salesforecast import pipeline
    from salesforecast.config import Settings
    from salesforecast.training import checkpoint as ckpt

    settings = Settings(workdir=tmp_path, data_dir=synth_dir)
    pipeline.build_features(settings)
    pipeline.apply_feature_store(settings)

    _, docs = rendered
    specs = next(d for d in docs if d["kind"] == "PyTorchJob")["spec"]["pytorchReplicaSpecs"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    small = ["--epochs", "1", "--windows-per-epoch", "64", "--batch-size", "32", "--encoder-length", "12"]
    small += ["--horizon", "4", "--val-weeks", "8", "--no-amp", "--no-track"]  # later flags win
    procs = []
    for rank, role in enumerate(("Master", "Worker")):
        container = specs[role]["template"]["spec"]["containers"][0]
        pod_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PET_", "SALESFORECAST_"))},
            **pod_env,
            "SALESFORECAST_PROFILE": "local",  # the cluster's PostgreSQL is not here; the code path is
            "SALESFORECAST_WORKDIR": str(tmp_path),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "WORLD_SIZE": "2",
            "RANK": str(rank),
        }
        command = [str(Path(sys.executable).with_name(container["command"][0])), *container["command"][1:]]
        out = subprocess.PIPE
        procs.append(subprocess.Popen([*command, *small], env=env, stdout=out, stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    summary = json.loads((tmp_path / "artifacts" / ckpt.SUMMARY).read_text())
    assert summary["world_size"] == 2 and summary["ranks_in_sync"], summary
    assert pod_env["OMP_NUM_THREADS"] == "1" and summary["threads"] == 1
    assert (tmp_path / "artifacts" / ckpt.BEST_MODEL).is_file()
