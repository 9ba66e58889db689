"""The cluster's wiring: kind's port mapping to Istio's NodePort ingress, and traces to the addons' Jaeger."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from manifestcheck.model import (
    Finding,
    Manifest,
    container_env,
    mapping,
    of_kind,
    pod_templates,
    resolve_host,
    sequence,
)
from manifestcheck.references import DEFAULT_INGRESS_LABELS
from manifestcheck.workloads import OTLP_ENDPOINT_ENV

INGRESS_GATEWAY = "istio-ingressgateway"
# docs/kind.md and scripts/kind.sh tell users to curl localhost:8080.
INGRESS_HOST_PORT = 8080
NODE_PORT_RANGE = range(30000, 32768)
ISTIO_NAMESPACE = "istio-system"
# The Kubernetes minors each Istio minor is tested on (istio.io, "Supported releases": the support
# status table). istioctl itself checks only the minimum, so it would install on an untested one.
ISTIO_KUBERNETES_SUPPORT = {"1.30": ("1.32", "1.36")}
_NODE_IMAGE = re.compile(r"kindest/node:v(?P<minor>\d+\.\d+)\.\d+(?P<digest>@sha256:[0-9a-f]{64})?")


def istio_operator(install: Sequence[Manifest]) -> Manifest | None:
    return next(iter(of_kind(install, "IstioOperator")), None)


def ingress_gateway(operator: Manifest) -> tuple[str, Mapping[str, Any]] | None:
    """The enabled istio-ingressgateway component, with its field path."""
    gateways = sequence(mapping(operator.spec.get("components")).get("ingressGateways"))
    for index, gateway in enumerate(gateways):
        gateway = mapping(gateway)
        if gateway.get("name") == INGRESS_GATEWAY and gateway.get("enabled", True) is not False:
            return f"spec.components.ingressGateways[{index}]", gateway
    return None


def ingress_labels(install: Sequence[Manifest]) -> Mapping[str, str]:
    """The labels of the ingress gateway's pods, which a Gateway's selector must match."""
    operator = istio_operator(install)
    found = ingress_gateway(operator) if operator is not None else None
    if found is None:
        return DEFAULT_INGRESS_LABELS
    return {**DEFAULT_INGRESS_LABELS, **{str(k): str(v) for k, v in mapping(found[1].get("label")).items()}}


def check_kind_ingress(
    kind_cluster: Sequence[Manifest], install: Sequence[Manifest], mesh: Sequence[Manifest]
) -> list[Finding]:
    """localhost:8080 -> kind node port -> the ingress gateway's NodePort -> the Gateway's server port."""
    operator = istio_operator(install)
    if operator is None:
        return [
            Finding(
                "kind-ingress",
                "istio/install",
                "IstioOperator",
                "-",
                "no IstioOperator: nothing installs the ingress gateway",
            )
        ]
    found = ingress_gateway(operator)
    if found is None:
        return [
            operator.finding(
                "kind-ingress", "spec.components.ingressGateways", f"no enabled {INGRESS_GATEWAY}"
            )
        ]
    path, gateway = found
    service = mapping(mapping(gateway.get("k8s")).get("service"))
    findings = []
    if service.get("type") != "NodePort":
        findings.append(
            operator.finding(
                "kind-ingress",
                f"{path}.k8s.service.type",
                f"{service.get('type')!r}: on kind a LoadBalancer stays <pending>; use NodePort",
            )
        )
    ports = {mapping(p).get("port"): (i, mapping(p)) for i, p in enumerate(sequence(service.get("ports")))}
    cluster = next(iter(of_kind(kind_cluster, "Cluster")), None)
    if cluster is None:
        findings.append(Finding("kind-ingress", "k8s/kind", "Cluster", "-", "no kind Cluster configuration"))
        return findings
    mappings = [
        mapping(m)
        for node in sequence(cluster.body.get("nodes"))
        for m in sequence(mapping(node).get("extraPortMappings"))
    ]
    for server_gateway in of_kind(mesh, "Gateway"):
        for index, server in enumerate(sequence(server_gateway.spec.get("servers"))):
            number = mapping(mapping(server).get("port")).get("number")
            if number not in ports:
                findings.append(
                    server_gateway.finding(
                        "kind-ingress",
                        f"spec.servers[{index}].port.number",
                        f"{number} is not a port of the ingress gateway's Service ({sorted(p for p in ports if p)})",
                    )
                )
                continue
            port_index, port = ports[number]
            node_port = port.get("nodePort")
            field = f"{path}.k8s.service.ports[{port_index}].nodePort"
            if node_port not in NODE_PORT_RANGE:
                findings.append(
                    operator.finding("kind-ingress", field, f"{node_port!r} is not a NodePort (30000-32767)")
                )
                continue
            if not any(
                m.get("containerPort") == node_port and m.get("hostPort") == INGRESS_HOST_PORT
                for m in mappings
            ):
                findings.append(
                    cluster.finding(
                        "kind-ingress",
                        "nodes.extraPortMappings",
                        f"no mapping of hostPort {INGRESS_HOST_PORT} to containerPort {node_port}, "
                        f"the ingress gateway's NodePort: localhost:{INGRESS_HOST_PORT} would not answer",
                    )
                )
    return findings


def check_tracing(install: Sequence[Manifest], mesh: Sequence[Manifest]) -> list[Finding]:
    """Telemetry names a provider of the mesh config, samples everything, and the apps export to the same collector."""
    operator = istio_operator(install)
    if operator is None:
        return []
    mesh_config = mapping(operator.spec.get("meshConfig"))
    providers = {
        str(mapping(p).get("name")): mapping(p) for p in sequence(mesh_config.get("extensionProviders"))
    }
    findings = []
    collector_hosts = set()
    telemetries = of_kind(install, "Telemetry")
    if not telemetries:
        findings.append(
            Finding(
                "tracing", "istio/install", "Telemetry", "-", "no Telemetry resource: the mesh traces nothing"
            )
        )
    for telemetry in telemetries:
        for index, tracing in enumerate(sequence(telemetry.spec.get("tracing"))):
            tracing = mapping(tracing)
            if tracing.get("randomSamplingPercentage") != 100:
                findings.append(
                    telemetry.finding(
                        "tracing",
                        f"spec.tracing[{index}].randomSamplingPercentage",
                        "the demo traces every request: 100",
                    )
                )
            for j, provider in enumerate(sequence(tracing.get("providers"))):
                name = str(mapping(provider).get("name"))
                if name not in providers:
                    findings.append(
                        telemetry.finding(
                            "tracing",
                            f"spec.tracing[{index}].providers[{j}].name",
                            f"no extensionProvider {name!r} in {operator.source}",
                        )
                    )
                    continue
                for kind in ("opentelemetry", "zipkin"):
                    service = mapping(providers[name].get(kind)).get("service")
                    if service:
                        collector_hosts.add(resolve_host(str(service).split("/")[-1], ISTIO_NAMESPACE))
    if not collector_hosts:
        return findings
    for template in pod_templates(mesh):
        for path, container in template.containers():
            endpoint = container_env(container).get(OTLP_ENDPOINT_ENV)
            host = urlsplit(endpoint).hostname if endpoint else None
            if host and resolve_host(host, template.namespace) not in collector_hosts:
                findings.append(
                    template.finding(
                        "tracing",
                        f"{path}.env.{OTLP_ENDPOINT_ENV}",
                        f"{host} is not the mesh's trace collector ({', '.join(sorted(collector_hosts))}): "
                        "app and proxy spans would land in different backends",
                    )
                )
    return findings


def _minor_tuple(minor: str) -> tuple[int, int]:
    major, _, rest = minor.partition(".")
    return int(major), int(rest)


def check_kind_node_image(kind_cluster: Sequence[Manifest], install: Sequence[Manifest]) -> list[Finding]:
    """Every kind node runs a Kubernetes the installed Istio supports, pinned by digest."""
    operator = istio_operator(install)
    tag = str(operator.spec.get("tag", "")) if operator is not None else ""
    istio_minor = ".".join(tag.split(".")[:2])
    supported = ISTIO_KUBERNETES_SUPPORT.get(istio_minor)
    findings = []
    for cluster in of_kind(kind_cluster, "Cluster"):
        for index, node in enumerate(sequence(cluster.spec.get("nodes", cluster.body.get("nodes")))):
            field = f"nodes[{index}].image"
            image = str(mapping(node).get("image", ""))
            match = _NODE_IMAGE.fullmatch(image)
            if match is None:
                findings.append(cluster.finding("kind-node", field, f"{image!r}: not a kindest/node:vX.Y.Z image"))
                continue
            if match["digest"] is None:
                findings.append(cluster.finding("kind-node", field, "pin the image by digest, as kind's release notes list it"))
            if supported is None:
                findings.append(cluster.finding("kind-node", field, f"Istio {tag!r}: its supported Kubernetes versions are not known here"))
            elif not _minor_tuple(supported[0]) <= _minor_tuple(match["minor"]) <= _minor_tuple(supported[1]):
                findings.append(
                    cluster.finding(
                        "kind-node",
                        field,
                        f"Kubernetes {match['minor']}: Istio {istio_minor} supports {supported[0]} to {supported[1]}",
                    )
                )
    return findings
