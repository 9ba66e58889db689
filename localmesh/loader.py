"""Reading the manifests from disk: the one place the local mesh touches k8s/ and istio/.

kustomize is not needed: the base kustomizations use only ``resources:`` and
``namespace:``, which this loader implements (a test compares it with
``kubectl kustomize``). Any other kustomize field is refused rather than
ignored, so the local mesh never runs something other than the cluster would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from localmesh.translate import Resource, TranslationError, overlay, resources_from_documents
from localmesh.translate.kube import with_autoscalers

KUSTOMIZATION = "kustomization.yaml"
# What this loader implements of kustomize; manifestcheck reports any other field.
KUSTOMIZATION_FIELDS = frozenset({"apiVersion", "kind", "resources", "namespace"})


@dataclass(frozen=True)
class Layout:
    """Where a checkout keeps its manifests."""

    root: Path

    @property
    def k8s(self) -> Path:
        return self.root / "k8s" / "base"

    @property
    def istio(self) -> Path:
        return self.root / "istio"

    @property
    def ingress(self) -> Path:
        return self.istio / "ingress"

    @property
    def policies(self) -> Path:
        """The scenarios' policy files: each replaces one resource of istio/ (Bookinfo's naming)."""
        return self.istio / "scenarios"

    def policy_names(self) -> list[str]:
        return sorted(path.stem for path in self.policies.glob("*.yaml"))


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def read_documents(path: Path, root: Path) -> list[tuple[str, object]]:
    """Every YAML document of a file, paired with the file's path relative to ``root``."""
    source = _relative(path, root)
    try:
        return [(source, document) for document in yaml.safe_load_all(path.read_text())]
    except yaml.YAMLError as error:
        raise TranslationError(f"{source}: not valid YAML: {error}") from None


@dataclass(frozen=True)
class Kustomization:
    """One kustomization.yaml (a Kustomization's or a Component's), as written: the one reader of them."""

    directory: Path
    source: str  # its path, relative to the checkout
    kind: str
    namespace: str | None
    resources: tuple[str, ...]  # the entries of ``resources:``, relative to ``directory``
    unsupported: tuple[str, ...]  # fields outside KUSTOMIZATION_FIELDS: a cluster would apply them, not this loader


def read_kustomization(directory: Path, root: Path) -> Kustomization:
    """``directory``'s kustomization.yaml; TranslationError when it is missing or not one."""
    path = directory / KUSTOMIZATION
    source = _relative(path, root)
    if not path.exists():
        raise TranslationError(f"{source}: missing")
    documents = [document for _, document in read_documents(path, root) if document is not None]
    body = documents[0] if documents else {}
    if len(documents) > 1 or not isinstance(body, Mapping):
        raise TranslationError(f"{source}: a kustomization is one mapping")
    entries = body.get("resources") or []
    if not isinstance(entries, list) or not all(isinstance(entry, str) for entry in entries):
        raise TranslationError(f"{source}: resources: must be a list of paths")
    return Kustomization(
        directory=directory,
        source=source,
        kind=str(body.get("kind", "Kustomization")),
        namespace=str(body["namespace"]) if body.get("namespace") else None,
        resources=tuple(entries),
        unsupported=tuple(sorted(set(body) - KUSTOMIZATION_FIELDS)),
    )


def load_kustomization(directory: Path, root: Path, namespace: str | None = None) -> list[Resource]:
    """The resources a kustomization lists, with its namespace applied, as kustomize would."""
    kustomization = read_kustomization(directory, root)
    source = kustomization.source
    if kustomization.unsupported:
        raise TranslationError(
            f"{source}: {', '.join(kustomization.unsupported)}: the local mesh reads only resources and namespace "
            "(use an overlay for anything else: it applies on a cluster only)"
        )
    namespace = kustomization.namespace or namespace
    resources: list[Resource] = []
    for entry in kustomization.resources:
        target = directory / entry
        if target.is_dir():
            resources += load_kustomization(target, root, namespace)
        elif target.exists():
            documents = read_documents(target, root)
            resources += resources_from_documents(documents, namespace or "default")
        else:
            raise TranslationError(f"{source}: resources: {entry} does not exist")
    if namespace:
        # kustomize's namespace transformer overrides what the files say.
        resources = [_in_namespace(resource, namespace) for resource in resources]
    # Not kustomize's doing but the cluster's: an autoscaler sets its Deployment's scale.
    return with_autoscalers(resources)


def _in_namespace(resource: Resource, namespace: str) -> Resource:
    if resource.kind == "Namespace" or resource.namespace == namespace:
        return resource
    return replace(resource, namespace=namespace)


def load_mesh(layout: Layout, policy: Sequence[str] = ()) -> list[Resource]:
    """k8s/base, istio/ and istio/ingress/, with the policy files' resources replacing the base ones they name.

    ``policy``: names of istio/scenarios/ files, applied in turn over the base (each replaces
    one resource, as ``kubectl apply`` of each in turn would).
    """
    resources = [
        *load_kustomization(layout.k8s, layout.root),
        *load_kustomization(layout.istio, layout.root),
        *load_kustomization(layout.ingress, layout.root),
    ]
    if isinstance(policy, str):
        raise TypeError(f"policy {policy!r}: a sequence of file names, not one string")
    if not policy:
        return resources
    # Scenario files name no namespace: they are applied to the istio/ kustomization's.
    namespace = read_kustomization(layout.istio, layout.root).namespace or "default"
    for part in policy:
        path = layout.policies / f"{part}.yaml"
        if not path.exists():
            known = ", ".join(layout.policy_names())
            raise TranslationError(f"no policy file {part!r} in {_relative(layout.policies, layout.root)} (known: {known})")
        resources = overlay(resources, resources_from_documents(read_documents(path, layout.root), namespace))
    return resources
