"""Checks of the OpenShift overlay, rendered by kubectl's built-in kustomize.

restricted-v2 is the SCC every authenticated user's pods get on OpenShift 4.11
and later. Its rules, from the SCC itself (openshift/cluster-kube-apiserver-operator,
bindata/bootkube/scc-manifests/0000_20_kube-apiserver-operator_00_scc-restricted-v2.yaml):
runAsUser MustRunAsRange (a UID from the namespace's range, so a fixed one is
refused unless it happens to fall in it), no privilege escalation, ALL
capabilities dropped (NET_BIND_SERVICE may be added back), seccomp
runtime/default, no host namespaces, ports or paths, and only these volume types.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.tools import KUBECTL

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "k8s" / "overlays" / "openshift"
BASE = ROOT / "k8s" / "base"
# OpenShift 4.20 runs Kubernetes 1.33.
KUBERNETES_VERSION = "1.33.0"

RESTRICTED_V2_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim", "projected", "secret",
}
RESTRICTED_V2_ADDABLE_CAPABILITIES = {"NET_BIND_SERVICE"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class RenderError(Exception):
    pass


def render(directory: Path) -> list[dict]:
    result = subprocess.run([str(KUBECTL), "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RenderError(result.stderr.strip())
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def ref(document: Mapping[str, Any]) -> str:
    metadata = document.get("metadata") or {}
    return f"{document.get('kind')} {metadata.get('namespace', '-')}/{metadata.get('name')}"


def pod_specs(documents: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, dict]]:
    for document in documents:
        if document.get("kind") in WORKLOAD_KINDS:
            yield ref(document), document["spec"]["template"]["spec"]
        elif document.get("kind") == "Pod":
            yield ref(document), document["spec"]


def _containers(pod: Mapping[str, Any]) -> list[dict]:
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]


def scc_problems(documents: Sequence[Mapping[str, Any]]) -> list[str]:
    """What restricted-v2 would refuse, or what would stop the pod under an arbitrary UID."""
    problems = []
    for where, pod in pod_specs(documents):
        pod_context = pod.get("securityContext") or {}
        for field in ("runAsUser", "runAsGroup"):
            if field in pod_context:
                problems.append(f"{where}: securityContext.{field} {pod_context[field]} is fixed; restricted-v2 assigns it")
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(flag):
                problems.append(f"{where}: {flag}")
        for volume in pod.get("volumes") or []:
            kinds = set(volume) - {"name"}
            if not kinds <= RESTRICTED_V2_VOLUMES:
                problems.append(f"{where}: volume {volume.get('name')} of type {sorted(kinds - RESTRICTED_V2_VOLUMES)}")
        pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
        for container in _containers(pod):
            name = f"{where} container {container.get('name')}"
            context = container.get("securityContext") or {}
            for field in ("runAsUser", "runAsGroup"):
                if field in context:
                    problems.append(f"{name}: securityContext.{field} {context[field]} is fixed; restricted-v2 assigns it")
            if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
                problems.append(f"{name}: runAsNonRoot is not true")
            if context.get("privileged"):
                problems.append(f"{name}: privileged")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: allowPrivilegeEscalation is not false")
            capabilities = context.get("capabilities") or {}
            if "ALL" not in (capabilities.get("drop") or []):
                problems.append(f"{name}: capabilities do not drop ALL")
            added = set(capabilities.get("add") or []) - RESTRICTED_V2_ADDABLE_CAPABILITIES
            if added:
                problems.append(f"{name}: adds capabilities {sorted(added)}")
            seccomp = (context.get("seccompProfile") or {}).get("type", pod_seccomp)
            if seccomp not in (None, "RuntimeDefault"):
                problems.append(f"{name}: seccomp profile {seccomp}, restricted-v2 allows runtime/default only")
            for port in container.get("ports") or []:
                if port.get("hostPort"):
                    problems.append(f"{name}: hostPort {port['hostPort']}")
    return problems


def _labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def route_problems(documents: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every Route reaches a Service of the rendering, by one of its ports, with pods behind it."""
    routes = [d for d in documents if d.get("kind") == "Route"]
    if not routes:
        return ["no Route in the overlay"]
    problems = []
    for route in routes:
        namespace = route["metadata"].get("namespace")
        spec = route.get("spec") or {}
        for backend in [spec.get("to") or {}, *(spec.get("alternateBackends") or [])]:
            where = f"{ref(route)} -> {backend.get('kind')} {backend.get('name')}"
            if backend.get("kind") != "Service":
                problems.append(f"{where}: a Route backend must be a Service")
                continue
            service = next(
                (d for d in documents if d.get("kind") == "Service" and d["metadata"]["name"] == backend.get("name")
                 and d["metadata"].get("namespace") == namespace),
                None,
            )
            if service is None:
                problems.append(f"{where}: no such Service in namespace {namespace}")
                continue
            target = (spec.get("port") or {}).get("targetPort")
            ports = service["spec"].get("ports") or []
            if target is None and len(ports) != 1:
                problems.append(f"{where}: no spec.port.targetPort and the Service has {len(ports)} ports")
            elif target is not None and not any(
                target == p.get("name") or target == p.get("targetPort", p.get("port")) for p in ports
            ):
                problems.append(f"{where}: targetPort {target!r} is none of the Service's ports")
            selector = service["spec"].get("selector") or {}
            backed = any(
                d.get("kind") in WORKLOAD_KINDS and d["metadata"].get("namespace") == namespace
                and _labels_match(selector, d["spec"]["template"]["metadata"].get("labels") or {})
                for d in documents
            )
            if not backed:
                problems.append(f"{where}: no workload of the overlay matches the Service's selector {selector}")
    return problems


def _without_fixed_ids(document: Mapping[str, Any]) -> dict:
    document = copy.deepcopy(dict(document))
    if document.get("kind") in WORKLOAD_KINDS:
        context = document["spec"]["template"]["spec"].get("securityContext") or {}
        context.pop("runAsUser", None)
        context.pop("runAsGroup", None)
    return document


def drift_problems(overlay: Sequence[Mapping[str, Any]], base: Sequence[Mapping[str, Any]]) -> list[str]:
    """The overlay runs k8s/base as it is, less the fixed UID and GID: nothing else may differ."""
    rendered = {ref(d): d for d in overlay}
    problems = []
    for document in base:
        theirs = rendered.get(ref(document))
        if theirs is None:
            problems.append(f"{ref(document)}: in k8s/base, not in the overlay")
        elif theirs != _without_fixed_ids(document):
            problems.append(f"{ref(document)}: differs from k8s/base beyond runAsUser/runAsGroup")
    return problems


def schema_problems(documents: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every Kubernetes resource (not the Route, an OpenShift API) against the API schema, strictly."""
    import kubernetes_validate

    problems = []
    for document in documents:
        if document.get("apiVersion", "").startswith("route.openshift.io/"):
            continue
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{ref(document)}: {'.'.join(str(p) for p in error.path)}: {error.message}")
    return problems
