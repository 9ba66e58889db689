"""Reading the manifests from disk: the one place the local mesh touches k8s/ and istio/.

kustomize is not needed: the base kustomizations use only ``resources:`` and
``namespace:``, which this loader implements (a test compares it with
``kubectl kustomize``). Any other kustomize field is refused rather than
ignored, so the local mesh never runs something other than the cluster would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from localmesh.translate import Resource, TranslationError, overlay, resources_from_documents

KUSTOMIZATION = "kustomization.yaml"
_SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "namespace"}


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
    def scenarios(self) -> Path:
        return self.istio / "scenarios"

    def scenario_names(self) -> list[str]:
        return sorted(path.stem for path in self.scenarios.glob("*.yaml"))


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


def load_kustomization(directory: Path, root: Path, namespace: str | None = None) -> list[Resource]:
    """The resources a kustomization lists, with its namespace applied, as kustomize would."""
    path = directory / KUSTOMIZATION
    source = _relative(path, root)
    if not path.exists():
        raise TranslationError(f"{source}: missing")
    kustomization = yaml.safe_load(path.read_text()) or {}
    unsupported = sorted(set(kustomization) - _SUPPORTED_FIELDS)
    if unsupported:
        raise TranslationError(
            f"{source}: {', '.join(unsupported)}: the local mesh reads only resources and namespace "
            "(use an overlay for anything else: it applies on a cluster only)"
        )
    namespace = kustomization.get("namespace") or namespace
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
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
    return resources


def _in_namespace(resource: Resource, namespace: str) -> Resource:
    if resource.kind == "Namespace" or resource.namespace == namespace:
        return resource
    return Resource(
        resource.api_version, resource.kind, namespace, resource.name, resource.spec, resource.source, resource.metadata
    )


def scenario_parts(scenario: str | None) -> list[str]:
    """The files of a scenario name: "a+b" applies istio/scenarios/a.yaml, then b.yaml over it."""
    if scenario in (None, "", "base"):
        return []
    return scenario.split("+")


def load_mesh(layout: Layout, scenario: str | None = None) -> list[Resource]:
    """k8s/base, istio/ and istio/ingress/, with a scenario's resources replacing the base ones they name.

    ``scenario`` may join several files with "+" (each replaces one resource,
    as ``kubectl apply`` of each in turn would).
    """
    resources = [
        *load_kustomization(layout.k8s, layout.root),
        *load_kustomization(layout.istio, layout.root),
        *load_kustomization(layout.ingress, layout.root),
    ]
    parts = scenario_parts(scenario)
    if not parts:
        return resources
    # Scenario files name no namespace: they are applied to the istio/ kustomization's.
    namespace = (yaml.safe_load((layout.istio / KUSTOMIZATION).read_text()) or {}).get("namespace", "default")
    for part in parts:
        path = layout.scenarios / f"{part}.yaml"
        if not path.exists():
            known = ", ".join(layout.scenario_names())
            raise TranslationError(f"no scenario {part!r} in {_relative(layout.scenarios, layout.root)} (known: {known})")
        resources = overlay(resources, resources_from_documents(read_documents(path, layout.root), namespace))
    return resources
