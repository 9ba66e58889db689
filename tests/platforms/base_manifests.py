"""The Deployments of k8s/base, which every other platform's files are checked against."""

from __future__ import annotations

from pathlib import Path

import yaml

from localmesh.loader import Layout, load_kustomization
from localmesh.translate.kube import replicas_at_rest

ROOT = Path(__file__).resolve().parents[2]


def k8s_deployments(root: Path = ROOT) -> dict[str, dict]:
    """Each Deployment of ``root``/k8s/base by name."""
    found = {}
    for path in sorted((root / "k8s" / "base").glob("*-deployment.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "Deployment":
                found[document["metadata"]["name"]] = document
    return found


def k8s_replicas(root: Path = ROOT) -> dict[str, int]:
    """The pods each Deployment of k8s/base runs when idle (its autoscaler's minReplicas), as the local mesh reads it."""
    layout = Layout(root)
    return {r.name: replicas_at_rest(r) for r in load_kustomization(layout.k8s, layout.root) if r.kind == "Deployment"}
