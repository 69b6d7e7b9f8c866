"""Cluster deployment: Kubernetes manifests (Kubeflow, KubeRay, PostgreSQL) and job submission."""
