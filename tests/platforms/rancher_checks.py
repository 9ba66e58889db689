"""Checks of k8s/overlays/rancher/istio-rancher.yaml: the kind install with a LoadBalancer ingress."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RANCHER_ISTIO = ROOT / "k8s" / "overlays" / "rancher" / "istio-rancher.yaml"
KIND_ISTIO = ROOT / "istio" / "install" / "istio-kind.yaml"
GATEWAY = ROOT / "istio" / "gateway.yaml"
INGRESS = "istio-ingressgateway"
# The kind walkthrough's URL, http://localhost:8080.
LOCAL_PORT = 8080


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def ingress_gateway(operator: Mapping[str, Any]) -> dict:
    gateways = ((operator.get("spec") or {}).get("components") or {}).get("ingressGateways") or []
    return next((g for g in gateways if g.get("name") == INGRESS), {})


def _without_ingress_service_and_name(operator: Mapping[str, Any]) -> dict:
    operator = copy.deepcopy(dict(operator))
    operator["metadata"].pop("name", None)
    (ingress_gateway(operator).get("k8s") or {}).pop("service", None)
    return operator


def differences_from_kind(rancher: Mapping[str, Any], kind: Mapping[str, Any]) -> list[str]:
    """The Rancher install is the kind install, its ingress Service aside."""
    if _without_ingress_service_and_name(rancher) != _without_ingress_service_and_name(kind):
        return ["istio-rancher.yaml differs from istio/install/istio-kind.yaml beyond the ingress Service"]
    return []


def ingress_problems(rancher: Mapping[str, Any], gateway_servers: Sequence[Mapping[str, Any]]) -> list[str]:
    """A LoadBalancer (k3s ServiceLB) with the Gateway's port and localhost:8080, both to the proxy's 8080."""
    gateway = ingress_gateway(rancher)
    if not gateway.get("enabled"):
        return [f"{INGRESS} is not enabled"]
    service = (gateway.get("k8s") or {}).get("service") or {}
    problems = []
    if service.get("type") != "LoadBalancer":
        problems.append(f"{INGRESS} Service type {service.get('type')}: k3s ServiceLB serves LoadBalancer Services only")
    ports = {p.get("port"): p for p in service.get("ports") or []}
    if any("nodePort" in p for p in ports.values()):
        problems.append(f"{INGRESS}: a fixed nodePort, which ServiceLB does not use")
    wanted = {server["port"]["number"] for server in gateway_servers} | {LOCAL_PORT}
    for number in sorted(wanted):
        port = ports.get(number)
        if port is None:
            problems.append(f"{INGRESS}: no Service port {number}")
        elif port.get("targetPort") != 8080:
            problems.append(f"{INGRESS}: port {number} targets {port.get('targetPort')}, the gateway proxy listens on 8080")
    return problems
