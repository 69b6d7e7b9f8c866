"""Write the cluster manifests as plain YAML files, in the order `kubectl apply -f DIR` needs."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import yaml

from salesforecast.deploy import manifests as m
from salesforecast.offline.files import atomic_write

FILES: dict[str, list[Callable[[m.ClusterConfig], m.Obj]]] = {
    "00-namespace.yaml": [m.namespace],
    "10-postgres.yaml": [m.postgres_secret, m.postgres_init, m.postgres_service, m.postgres_statefulset],
    "20-storage.yaml": [m.shared_pvc],
    "40-data-prep-job.yaml": [m.data_prep_job],
    "50-pytorchjob.yaml": [m.pytorchjob],
    "51-trainjob.yaml": [m.trainjob],
    "60-raycluster.yaml": [m.ray_cluster],
    "70-serving.yaml": [m.serving_deployment, m.serving_service, m.serving_hpa],
}
FEATURE_STORE_FILE = "30-feature-store.yaml"
SECRET_FILE = "10-postgres.yaml"


def _existing_password(out_dir: Path, namespace: str) -> str | None:
    """Keep the password of an earlier render, so re-rendering never locks out a running database."""
    path = out_dir / SECRET_FILE
    if not path.is_file():
        return None
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "Secret" and doc.get("metadata", {}).get("namespace") == namespace:
            return doc.get("stringData", {}).get("POSTGRES_PASSWORD")
    return None


def render(cfg: m.ClusterConfig, out_dir: Path, feature_store_configs: dict[str, str]) -> list[Path]:
    """Write every manifest; the password is generated once per output folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg.pg_password = _existing_password(out_dir, cfg.namespace) or secrets.token_urlsafe(24)
    documents = dict(FILES)
    written = []
    for name, builders in sorted(
        {
            **documents,
            FEATURE_STORE_FILE: [lambda c: m.feature_store_configmap(c, feature_store_configs)],
        }.items()
    ):
        text = yaml.safe_dump_all([build(cfg) for build in builders], sort_keys=False)
        written.append(atomic_write(out_dir / name, lambda tmp, t=text: tmp.write_text(t)))
    return written


def load_documents(out_dir: Path) -> list[m.Obj]:
    docs: list[m.Obj] = []
    for path in sorted(out_dir.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs
