"""Kubernetes manifests against the API's OpenAPI schemas, strictly: an unknown (misspelled) field fails.

The schemas are those kubernetes-validate ships for each Kubernetes version;
we check every version whose node image the pinned kind release offers, so a
user who picks another image of that release is covered too.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from importlib.resources import files

import jsonschema
from referencing import Registry, Resource

from manifestcheck.model import Finding, Manifest

CHECK = "kubernetes-schema"
# The node images of kind v0.33.0 (k8s/kind/cluster.yaml pins v1.36.4 among them).
KIND_KUBERNETES_VERSIONS = ("1.34", "1.35", "1.36", "1.37")
# Groups whose kinds are not part of the Kubernetes API (CRDs or tool configs).
NON_KUBERNETES_GROUPS = ("istio.io", "kind.x-k8s.io", "kustomize.config.k8s.io")


def is_kubernetes_manifest(manifest: Manifest) -> bool:
    return not manifest.group.endswith(NON_KUBERNETES_GROUPS)


def field_path(path: Iterable[object]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "-"


@functools.cache
def _schema_directory(version: str):
    """kubernetes-validate's strict schemas for a major.minor version."""
    root = files("kubernetes_validate").joinpath("kubernetes-json-schema")
    for directory in root.iterdir():
        if directory.name.startswith(f"v{version}.") and directory.name.endswith("-local-strict"):
            return directory
    raise LookupError(f"kubernetes-validate has no schemas for Kubernetes {version}")


@functools.cache
def _definitions(version: str) -> Registry:
    # Loaded once per version: kubernetes_validate.validate() re-reads these 2 MB per call.
    contents = json.loads(_schema_directory(version).joinpath("_definitions.json").read_text())
    return Resource.from_contents(contents) @ Registry()


@functools.cache
def _validator(version: str, api_version: str, kind: str) -> jsonschema.Draft202012Validator | None:
    # The file naming of kubernetes-validate: apps/v1 Deployment -> deployment-apps-v1.json.
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _schema_directory(version).joinpath(f"{kind.lower()}-{group_version}.json")
    if not kind or not path.is_file():
        return None
    schema = json.loads(path.read_text())
    return jsonschema.Draft202012Validator(
        schema, registry=Resource.from_contents(schema) @ _definitions(version)
    )


def check_kubernetes_schema(
    manifests: Iterable[Manifest], versions: Sequence[str] = KIND_KUBERNETES_VERSIONS
) -> list[Finding]:
    findings = []
    for manifest in manifests:
        if not is_kubernetes_manifest(manifest):
            continue
        seen: dict[tuple[str, str], list[str]] = {}
        for version in versions:
            validator = _validator(version, manifest.api_version, manifest.kind)
            if validator is None:
                problem = ("apiVersion", f"no {manifest.api_version} {manifest.kind} in the Kubernetes API")
                seen.setdefault(problem, []).append(version)
                continue
            for error in validator.iter_errors(dict(manifest.body)):
                seen.setdefault((field_path(error.absolute_path), error.message), []).append(version)
        for (path, message), failed in seen.items():
            findings.append(manifest.finding(CHECK, path, f"{message} (Kubernetes {', '.join(failed)})"))
    return findings
