"""Parsed YAML documents, each with the file it came from, sorted by what the local mesh does with them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from localmesh.translate.errors import Origin, TranslationError

NETWORKING_VERSIONS = ("networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3")

# (apiVersion, kind) the translator turns into Envoy configuration.
TRANSLATED = {
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    *((version, kind) for version in NETWORKING_VERSIONS for kind in ("Gateway", "VirtualService", "DestinationRule")),
    ("networking.istio.io/v1alpha3", "EnvoyFilter"),
}

# API groups and kinds that change nothing a local Envoy routes: applied on a
# cluster only, and listed as such by the runner's status.
CLUSTER_ONLY_GROUPS = ("security.istio.io", "telemetry.istio.io")
CLUSTER_ONLY_KINDS = {
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
}


@dataclass(frozen=True)
class Resource:
    """One Kubernetes or Istio object, as parsed from YAML, with the path of its file."""

    api_version: str
    kind: str
    namespace: str
    name: str
    spec: Mapping[str, Any]
    source: str
    metadata: Mapping[str, Any]
    # A Deployment a HorizontalPodAutoscaler targets: the autoscaler's minReplicas, the scale
    # it settles at when idle (kube.with_autoscalers sets it). None: no autoscaler targets it.
    autoscaler_min_replicas: int | None = None

    @classmethod
    def from_document(cls, document: Mapping[str, Any], source: str, default_namespace: str = "default") -> Resource:
        if not isinstance(document, Mapping):
            raise TranslationError(f"{source}: a manifest must be a mapping, not {type(document).__name__}")
        metadata = document.get("metadata") or {}
        api_version, kind, name = document.get("apiVersion"), document.get("kind"), metadata.get("name")
        for field, value in (("apiVersion", api_version), ("kind", kind), ("metadata.name", name)):
            if not isinstance(value, str) or not value:
                raise TranslationError(f"{source}: a manifest needs {field}")
        namespace = metadata.get("namespace") or default_namespace
        return cls(api_version, kind, namespace, name, document.get("spec") or {}, source, metadata)

    @property
    def origin(self) -> Origin:
        return Origin(self.source, self.kind, self.namespace, self.name)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


def resources_from_documents(
    documents: Iterable[tuple[str, Mapping[str, Any] | None]], default_namespace: str = "default"
) -> list[Resource]:
    """``(path, document)`` pairs, as ``yaml.safe_load_all`` gives them per file; empty documents are skipped."""
    return [
        Resource.from_document(document, source, default_namespace)
        for source, document in documents
        if document is not None
    ]


def overlay(base: Iterable[Resource], scenario: Iterable[Resource]) -> list[Resource]:
    """The base manifests with a scenario's resources replacing those of the same kind, namespace and name.

    As ``kubectl apply`` of the scenario over the base would leave them.
    """
    merged = {resource.key: resource for resource in base}
    for resource in scenario:
        merged[resource.key] = resource
    return list(merged.values())


def is_translated(resource: Resource) -> bool:
    return (resource.api_version, resource.kind) in TRANSLATED


def is_cluster_only(resource: Resource) -> bool:
    return resource.group in CLUSTER_ONLY_GROUPS or (resource.api_version, resource.kind) in CLUSTER_ONLY_KINDS


def check_kind(resource: Resource) -> None:
    if not (is_translated(resource) or is_cluster_only(resource)):
        raise TranslationError(
            f"{resource.source}: {resource.origin.ref}: "
            f"kind {resource.kind} of {resource.api_version} is not supported by the local mesh "
            "(it runs only on a cluster)"
        )
