"""Reading the repository's manifests from disk: the only module of the checks that does I/O on them.

Kustomizations are read by the local mesh's reader (``localmesh.loader``: ``resources:``
and ``namespace:``), here of plain files only, so a field only a real kustomize would
apply is reported rather than silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localmesh import loader as localmesh_loader
from localmesh.translate import TranslationError
from manifestcheck.model import DEFAULT_NAMESPACE, Finding, Manifest

KUBERNETES_BASE = "k8s/base"
ISTIO = "istio"
# The ingress gateway's own policy, in its namespace: a kustomization of its own.
ISTIO_INGRESS = "istio/ingress"
SCENARIOS = "istio/scenarios"
ISTIO_INSTALL = "istio/install"
KIND = "k8s/kind"
ADDONS = "k8s/addons"
# Optional kustomize components (kind: Component), each in a directory of its own.
COMPONENTS = "k8s/components"
DASHBOARDS = "dashboards"
WORKFLOWS = ".github/workflows"
# Files of k8s/addons that are patches for resources of Istio's addons, not resources.
PATCH_SUFFIX = "-patch.yaml"
# libyaml's loader when PyYAML was built with it: the same documents, several times faster.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Dashboard:
    source: str
    body: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True)
class Patch:
    source: str
    body: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True)
class Repository:
    """Everything the checks read, parsed; ``problems`` are what could not be read."""

    root: Path
    kubernetes: tuple[Manifest, ...] = ()
    istio: tuple[Manifest, ...] = ()
    scenarios: Mapping[str, tuple[Manifest, ...]] = field(default_factory=dict)
    install: tuple[Manifest, ...] = ()
    kind_cluster: tuple[Manifest, ...] = ()
    addons: tuple[Manifest, ...] = ()
    components: Mapping[str, tuple[Manifest, ...]] = field(default_factory=dict)
    patches: tuple[Patch, ...] = ()
    dashboards: tuple[Dashboard, ...] = ()
    problems: tuple[Finding, ...] = ()

    @property
    def mesh(self) -> tuple[Manifest, ...]:
        """The workloads and the mesh policy for them, as applied together."""
        return self.kubernetes + self.istio

    def scenario_source(self, name: str) -> str:
        return f"{SCENARIOS}/{name}.yaml"


def relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def parse_yaml_documents(text: str, source: str) -> tuple[list[Any], list[Finding]]:
    try:
        documents = [doc for doc in yaml.load_all(text, Loader=SafeLoader) if doc is not None]
    except yaml.YAMLError as error:
        return [], [Finding("load", source, "-", "-", f"not valid YAML: {error}")]
    return documents, []


def read_manifests(
    root: Path, path: Path, namespace: str = DEFAULT_NAMESPACE
) -> tuple[list[Manifest], list[Finding]]:
    source = relative(root, path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        return [], [Finding("load", source, "-", "-", f"cannot read: {error}")]
    documents, problems = parse_yaml_documents(text, source)
    manifests = []
    for index, document in enumerate(documents):
        if not isinstance(document, Mapping):
            problems.append(Finding("load", source, f"document {index}", "-", "a manifest must be a mapping"))
            continue
        manifests.append(Manifest(source, document, namespace))
    return manifests, problems


def read_kustomization(
    root: Path, directory: str, kind: str = "Kustomization", default_namespace: str = DEFAULT_NAMESPACE
) -> tuple[list[Manifest], list[Finding]]:
    """The resources a kustomization (or a Component) lists, each with the kustomization's namespace,
    else ``default_namespace``. The file is read by the local mesh's reader (localmesh.loader)."""
    try:
        kustomization = localmesh_loader.read_kustomization(root / directory, root)
    except TranslationError as error:
        source = relative(root, root / directory / localmesh_loader.KUSTOMIZATION)
        return [], [Finding("load", source, "-", "-", str(error).removeprefix(f"{source}: "))]
    source, resource = kustomization.source, kind
    manifests: list[Manifest] = []
    problems: list[Finding] = []
    if kustomization.kind != kind:
        problems.append(Finding("kustomization", source, resource, "kind", f"must be {kind}"))
    for name in kustomization.unsupported:
        problems.append(
            Finding(
                "kustomization",
                source,
                resource,
                name,
                "only resources and namespace are read by the local mesh: this field would apply "
                "on a cluster and not locally",
            )
        )
    namespace = kustomization.namespace or default_namespace
    if not kustomization.resources:
        problems.append(Finding("kustomization", source, resource, "resources", "lists no resource file"))
        return manifests, problems
    for index, entry in enumerate(kustomization.resources):
        target = kustomization.directory / entry
        if "://" in entry or not target.is_file():
            problems.append(
                Finding(
                    "kustomization",
                    source,
                    resource,
                    f"resources[{index}]",
                    f"{entry!r} is not a file of {directory}/ (only plain files are supported)",
                )
            )
            continue
        read, read_problems = read_manifests(root, target, namespace)
        manifests += read
        problems += read_problems
    return manifests, problems


def yaml_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_repository(root: Path) -> Repository:
    root = Path(root)
    problems: list[Finding] = []
    kubernetes, found = read_kustomization(root, KUBERNETES_BASE)
    problems += found
    istio, found = read_kustomization(root, ISTIO)
    problems += found
    namespace = next((m.default_namespace for m in istio), DEFAULT_NAMESPACE)
    ingress, found = read_kustomization(root, ISTIO_INGRESS)
    istio += ingress
    problems += found

    scenarios: dict[str, tuple[Manifest, ...]] = {}
    for path in yaml_files(root / SCENARIOS):
        # Applied with `-n <namespace of istio/>` (scripts/kind.sh), like the base.
        read, found = read_manifests(root, path, namespace)
        scenarios[path.stem] = tuple(read)
        problems += found

    def read_all(directory: str, skip_patches: bool = False) -> list[Manifest]:
        manifests = []
        for path in yaml_files(root / directory):
            if skip_patches and path.name.endswith(PATCH_SUFFIX):
                continue
            read, found = read_manifests(root, path)
            manifests += read
            problems.extend(found)
        return manifests

    # Applied with `-n <namespace of k8s/base>` (scripts/kind.sh), or included by an overlay of it.
    components: dict[str, tuple[Manifest, ...]] = {}
    base_namespace = next((m.default_namespace for m in kubernetes), DEFAULT_NAMESPACE)
    directory = root / COMPONENTS
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        if path.is_dir():
            read, found = read_kustomization(root, f"{COMPONENTS}/{path.name}", "Component", base_namespace)
            components[path.name] = tuple(read)
            problems += found

    install = read_all(ISTIO_INSTALL)
    kind_cluster = read_all(KIND)
    addons = read_all(ADDONS, skip_patches=True)

    patches = []
    for path in yaml_files(root / ADDONS):
        if path.name.endswith(PATCH_SUFFIX):
            documents, found = parse_yaml_documents(path.read_text(encoding="utf-8"), relative(root, path))
            problems += found
            patches += [Patch(relative(root, path), doc) for doc in documents if isinstance(doc, Mapping)]

    dashboards = []
    for path in sorted((root / DASHBOARDS).glob("*.json")):
        source = relative(root, path)
        try:
            dashboards.append(Dashboard(source, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError) as error:
            problems.append(Finding("load", source, "-", "-", f"not valid JSON: {error}"))

    return Repository(
        root=root,
        kubernetes=tuple(kubernetes),
        istio=tuple(istio),
        scenarios=scenarios,
        install=tuple(install),
        kind_cluster=tuple(kind_cluster),
        addons=tuple(addons),
        components=components,
        patches=tuple(patches),
        dashboards=tuple(dashboards),
        problems=tuple(problems),
    )
