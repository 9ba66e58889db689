"""The Deployments of k8s/base, which every other platform's files are checked against."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def k8s_deployments(root: Path = ROOT) -> dict[str, dict]:
    """Each Deployment of ``root``/k8s/base by name."""
    found = {}
    for path in sorted((root / "k8s" / "base").glob("*-deployment.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "Deployment":
                found[document["metadata"]["name"]] = document
    return found
