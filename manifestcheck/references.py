"""References between resources, as `istioctl analyze` or a careful reviewer checks them.

Each check takes the manifests applied together (workloads and mesh policy)
and returns findings; none reads a file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from manifestcheck.model import (
    Finding,
    Manifest,
    PodTemplate,
    container_port_numbers,
    label_selector_matches,
    labels_match,
    mapping,
    of_kind,
    pod_templates,
    resolve_host,
    sequence,
    services_by_fqdn,
)

MESH = "mesh"
# Labels of the ingress gateway istioctl installs (component istio-ingressgateway).
DEFAULT_INGRESS_LABELS = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
# Where Istio installs the ingress gateway: its own policies (istio/ingress/) live there.
INGRESS_NAMESPACE = "istio-system"
# Identities outside the manifests that a policy may name: Istio's ingress gateway.
EXTERNAL_PRINCIPALS = frozenset({"cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"})
# Port-name prefixes from which Istio selects a protocol (istio.io "protocol selection").
PROTOCOL_PREFIXES = (
    "http",
    "http2",
    "https",
    "grpc",
    "grpc-web",
    "h2c",
    "mongo",
    "mysql",
    "redis",
    "tcp",
    "tls",
    "udp",
)
_PRINCIPAL = re.compile(r"^(?P<domain>[^/]+)/ns/(?P<namespace>[^/]+)/sa/(?P<account>[^/]+)$")


# --- destinations ------------------------------------------------------------


def http_routes(vs: Manifest) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for index, route in enumerate(sequence(vs.spec.get("http"))):
        yield f"spec.http[{index}]", mapping(route)


def destinations(vs: Manifest) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every destination of a VirtualService (routes and mirrors) with its field path."""
    for path, route in http_routes(vs):
        for index, entry in enumerate(sequence(route.get("route"))):
            yield f"{path}.route[{index}].destination", mapping(mapping(entry).get("destination"))
        if "mirror" in route:
            yield f"{path}.mirror", mapping(route.get("mirror"))
        for index, mirror in enumerate(sequence(route.get("mirrors"))):
            yield f"{path}.mirrors[{index}].destination", mapping(mapping(mirror).get("destination"))


def check_destination_hosts(manifests: Sequence[Manifest]) -> list[Finding]:
    """Every route, mirror and DestinationRule host is a Service of the manifests, on a port it has."""
    services = services_by_fqdn(manifests)
    findings = []
    for vs in of_kind(manifests, "VirtualService"):
        for path, destination in destinations(vs):
            host = resolve_host(str(destination.get("host", "")), vs.namespace)
            service = services.get(host)
            if service is None:
                findings.append(
                    vs.finding("destination-host", f"{path}.host", f"no Service {host} in the manifests")
                )
                continue
            number = mapping(destination.get("port")).get("number")
            ports = [mapping(p).get("port") for p in sequence(service.spec.get("ports"))]
            if number is not None and number not in ports:
                findings.append(
                    vs.finding(
                        "destination-host", f"{path}.port.number", f"Service {host} has no port {number}"
                    )
                )
    for rule in of_kind(manifests, "DestinationRule"):
        host = resolve_host(str(rule.spec.get("host", "")), rule.namespace)
        if host not in services:
            findings.append(
                rule.finding("destination-host", "spec.host", f"no Service {host} in the manifests")
            )
    return findings


def service_pods(service: Manifest, templates: Sequence[PodTemplate]) -> list[PodTemplate]:
    selector = mapping(service.spec.get("selector"))
    return [t for t in templates if t.namespace == service.namespace and labels_match(selector, t.labels)]


def subsets_of(rule: Manifest) -> dict[str, Mapping[str, Any]]:
    return {str(mapping(s).get("name")): mapping(s) for s in sequence(rule.spec.get("subsets"))}


def check_subsets(manifests: Sequence[Manifest]) -> list[Finding]:
    """Routed subsets are defined, and every subset's labels select pods of its host's Service."""
    services = services_by_fqdn(manifests)
    templates = pod_templates(manifests)
    rules_by_host: dict[str, list[Manifest]] = {}
    findings = []
    for rule in of_kind(manifests, "DestinationRule"):
        host = resolve_host(str(rule.spec.get("host", "")), rule.namespace)
        rules_by_host.setdefault(host, []).append(rule)
        service = services.get(host)
        if service is None:
            continue  # destination-host reports it
        pods = service_pods(service, templates)
        for index, subset in enumerate(sequence(rule.spec.get("subsets"))):
            labels = mapping(mapping(subset).get("labels"))
            if not any(labels_match(labels, pod.labels) for pod in pods):
                findings.append(
                    rule.finding(
                        "subset",
                        f"spec.subsets[{index}].labels",
                        f"{dict(labels)} selects no pod of Service {host}: its cluster would have no endpoint (503 NR)",
                    )
                )
    for vs in of_kind(manifests, "VirtualService"):
        for path, destination in destinations(vs):
            subset = destination.get("subset")
            if not subset:
                continue
            host = resolve_host(str(destination.get("host", "")), vs.namespace)
            if not any(str(subset) in subsets_of(rule) for rule in rules_by_host.get(host, [])):
                findings.append(
                    vs.finding(
                        "subset", f"{path}.subset", f"no DestinationRule defines subset {subset!r} of {host}"
                    )
                )
    return findings


def check_route_weights(manifests: Sequence[Manifest]) -> list[Finding]:
    """A split over several destinations adds up to 100."""
    findings = []
    for vs in of_kind(manifests, "VirtualService"):
        for path, route in http_routes(vs):
            entries = [mapping(e) for e in sequence(route.get("route"))]
            if len(entries) < 2:
                continue
            weights = [e.get("weight", 0) for e in entries]
            if not all(isinstance(w, int) and w >= 0 for w in weights):
                findings.append(
                    vs.finding(
                        "route-weights", f"{path}.route", f"weights {weights} must be whole numbers >= 0"
                    )
                )
            elif sum(weights) != 100:
                findings.append(
                    vs.finding(
                        "route-weights",
                        f"{path}.route",
                        f"weights {weights} add up to {sum(weights)}, not 100",
                    )
                )
    return findings


# --- gateways ----------------------------------------------------------------


def _strip_namespace(host: str) -> str:
    return host.split("/", 1)[1] if "/" in host else host


def hosts_intersect(first: str, second: str) -> bool:
    first, second = _strip_namespace(first).lower(), _strip_namespace(second).lower()
    if first == "*" or second == "*" or first == second:
        return True
    for wildcard, other in ((first, second), (second, first)):
        if wildcard.startswith("*.") and other.endswith(wildcard[1:]):
            return True
    return False


def gateway_key(name: str, namespace: str) -> str:
    return name if "/" in name else f"{namespace}/{name}"


def check_gateway_bindings(
    manifests: Sequence[Manifest], ingress_labels: Mapping[str, str] = DEFAULT_INGRESS_LABELS
) -> list[Finding]:
    """VirtualServices name existing Gateways and share a host with them; Gateways select the ingress and are used."""
    gateways = {f"{g.namespace}/{g.name}": g for g in of_kind(manifests, "Gateway")}
    bound: set[str] = set()
    findings = []
    for vs in of_kind(manifests, "VirtualService"):
        hosts = [str(h) for h in sequence(vs.spec.get("hosts"))]
        for index, name in enumerate(sequence(vs.spec.get("gateways"))):
            if name == MESH:
                continue
            key = gateway_key(str(name), vs.namespace)
            gateway = gateways.get(key)
            if gateway is None:
                findings.append(
                    vs.finding(
                        "gateway-binding", f"spec.gateways[{index}]", f"no Gateway {key} in the manifests"
                    )
                )
                continue
            bound.add(key)
            server_hosts = [
                str(h)
                for s in sequence(gateway.spec.get("servers"))
                for h in sequence(mapping(s).get("hosts"))
            ]
            if not any(hosts_intersect(h, s) for h in hosts for s in server_hosts):
                findings.append(
                    vs.finding(
                        "gateway-binding",
                        "spec.hosts",
                        f"{hosts} share no host with Gateway {key} {server_hosts}: the ingress answers 404",
                    )
                )
    for key, gateway in gateways.items():
        selector = mapping(gateway.spec.get("selector"))
        if not labels_match(selector, ingress_labels):
            findings.append(
                gateway.finding(
                    "gateway-binding",
                    "spec.selector",
                    f"{dict(selector)} does not select the ingress gateway (labels {dict(ingress_labels)})",
                )
            )
        if key not in bound:
            findings.append(
                gateway.finding(
                    "gateway-binding", "metadata.name", "no VirtualService is bound to this Gateway"
                )
            )
    return findings


# --- selectors and ports -----------------------------------------------------


def workload_labels(policy: Manifest) -> Mapping[str, Any]:
    """The pod labels an Istio policy selects: ``selector.matchLabels``, or an EnvoyFilter's ``workloadSelector``."""
    if policy.kind == "EnvoyFilter":
        return mapping(mapping(policy.spec.get("workloadSelector")).get("labels"))
    return mapping(mapping(policy.spec.get("selector")).get("matchLabels"))


def selects_ingress(policy: Manifest, ingress_labels: Mapping[str, str] = DEFAULT_INGRESS_LABELS) -> bool:
    """A policy of the ingress gateway: in its namespace, selecting its pods (installed by Istio, not here)."""
    labels = workload_labels(policy)
    return policy.namespace == INGRESS_NAMESPACE and bool(labels) and labels_match(labels, ingress_labels)


def check_selectors(
    manifests: Sequence[Manifest], ingress_labels: Mapping[str, str] = DEFAULT_INGRESS_LABELS
) -> list[Finding]:
    """Every selector of a Service, workload, budget, autoscaler or Istio policy selects pods."""
    templates = pod_templates(manifests)
    findings = []

    def pods_in(namespace: str) -> list[PodTemplate]:
        return [t for t in templates if t.namespace == namespace]

    for service in of_kind(manifests, "Service"):
        selector = mapping(service.spec.get("selector"))
        if not selector:
            findings.append(
                service.finding("selector", "spec.selector", "no selector: the Service has no endpoints")
            )
        elif not service_pods(service, templates):
            findings.append(service.finding("selector", "spec.selector", f"{dict(selector)} selects no pod"))
    for template in templates:
        selector = mapping(template.owner.spec.get("selector"))
        if not label_selector_matches(selector, template.labels):
            findings.append(
                template.finding(
                    "selector", "spec.selector", "does not select the workload's own pod template"
                )
            )
    for budget in of_kind(manifests, "PodDisruptionBudget"):
        selector = mapping(budget.spec.get("selector"))
        if not any(label_selector_matches(selector, t.labels) for t in pods_in(budget.namespace)):
            findings.append(budget.finding("selector", "spec.selector", "selects no pod"))
    for autoscaler in of_kind(manifests, "HorizontalPodAutoscaler"):
        target = mapping(autoscaler.spec.get("scaleTargetRef"))
        owner = next(
            (
                t
                for t in pods_in(autoscaler.namespace)
                if t.owner.kind == target.get("kind") and t.owner.name == target.get("name")
            ),
            None,
        )
        if owner is None:
            findings.append(
                autoscaler.finding(
                    "selector",
                    "spec.scaleTargetRef",
                    f"no {target.get('kind')} {target.get('name')} in the manifests",
                )
            )
            continue
        for index, metric in enumerate(sequence(autoscaler.spec.get("metrics"))):
            container = mapping(mapping(metric).get("containerResource")).get("container")
            if container and owner.container_named(str(container)) is None:
                findings.append(
                    autoscaler.finding(
                        "selector",
                        f"spec.metrics[{index}].containerResource.container",
                        f"{target.get('name')} has no container {container!r}",
                    )
                )
    for policy in of_kind(
        manifests,
        "AuthorizationPolicy",
        "PeerAuthentication",
        "Sidecar",
        "Telemetry",
        "RequestAuthentication",
        "EnvoyFilter",
    ):
        labels = workload_labels(policy)
        field = "spec.workloadSelector.labels" if policy.kind == "EnvoyFilter" else "spec.selector.matchLabels"
        if policy.kind == "EnvoyFilter" and not labels:
            # Patches below Istio's API belong to the one proxy they were written for.
            findings.append(policy.finding("selector", field, "missing: the patch applies to every proxy"))
        elif (
            labels
            and not selects_ingress(policy, ingress_labels)
            and not any(labels_match(labels, t.labels) for t in pods_in(policy.namespace))
        ):
            findings.append(
                policy.finding("selector", field, f"{dict(labels)} selects no pod: the policy applies nowhere")
            )
    return findings


def check_service_ports(manifests: Sequence[Manifest]) -> list[Finding]:
    """Ports say their protocol (name prefix or appProtocol), and target a port the pods declare."""
    templates = pod_templates(manifests)
    findings = []
    for service in of_kind(manifests, "Service"):
        pods = service_pods(service, templates)
        for index, port in enumerate(sequence(service.spec.get("ports"))):
            port = mapping(port)
            name = str(port.get("name") or "")
            word = name.split("-", 1)[0].lower()
            if word not in PROTOCOL_PREFIXES and not port.get("appProtocol"):
                findings.append(
                    service.finding(
                        "service-port",
                        f"spec.ports[{index}].name",
                        f"{name or 'unnamed'}: neither a protocol prefix (http, grpc, tcp...) nor appProtocol; "
                        "Istio would treat the port as opaque TCP (no routes, retries or faults)",
                    )
                )
            target = port.get("targetPort", port.get("port"))
            for pod in pods:
                declared = {n for _, c in pod.containers() for n in container_port_numbers(c)}
                if str(target) not in declared:
                    findings.append(
                        service.finding(
                            "service-port",
                            f"spec.ports[{index}].targetPort",
                            f"{target!r} is not a declared container port of {pod.owner.ref}",
                        )
                    )
    return findings


# --- identities ----------------------------------------------------------------


def service_accounts(manifests: Iterable[Manifest]) -> set[tuple[str, str]]:
    return {(m.namespace, m.name) for m in of_kind(manifests, "ServiceAccount")}


def check_service_accounts(manifests: Sequence[Manifest]) -> list[Finding]:
    """Each workload runs as its own ServiceAccount, which the manifests define."""
    accounts = service_accounts(manifests)
    findings = []
    for template in pod_templates(manifests):
        name = template.spec.get("serviceAccountName")
        if not name or name == "default":
            findings.append(
                template.finding(
                    "service-account",
                    "spec.template.spec.serviceAccountName",
                    "runs as the namespace's default ServiceAccount: no identity of its own for mTLS and policies",
                )
            )
        elif (template.namespace, str(name)) not in accounts:
            findings.append(
                template.finding(
                    "service-account",
                    "spec.template.spec.serviceAccountName",
                    f"no ServiceAccount {name} in the manifests",
                )
            )
    return findings


def _names_operations(policy: Manifest) -> bool:
    rules = sequence(policy.spec.get("rules"))
    return bool(rules) and all(sequence(mapping(rule).get("to")) for rule in rules)


def check_authorization(
    manifests: Sequence[Manifest],
    external_principals: frozenset[str] = EXTERNAL_PRINCIPALS,
    ingress_labels: Mapping[str, str] = DEFAULT_INGRESS_LABELS,
) -> list[Finding]:
    """ALLOW rules name real identities (no wildcard) and the operations they allow.

    The ingress gateway's policy names operations only: its callers are the public. A policy
    whose callers are all the ingress gateway may leave the operations to the ingress's policy,
    so that the public surface is written in one place.
    """
    accounts = service_accounts(manifests)
    policies = of_kind(manifests, "AuthorizationPolicy")
    edge_decides = any(
        selects_ingress(p, ingress_labels) and p.spec.get("action", "ALLOW") == "ALLOW" and _names_operations(p)
        for p in policies
    )
    findings = []
    for policy in policies:
        if policy.spec.get("action", "ALLOW") != "ALLOW":
            continue
        at_ingress = selects_ingress(policy, ingress_labels)
        for index, rule in enumerate(sequence(policy.spec.get("rules"))):
            rule = mapping(rule)
            path = f"spec.rules[{index}]"
            sources = [mapping(mapping(entry).get("source")) for entry in sequence(rule.get("from"))]
            principals = [
                (i, j, str(p))
                for i, s in enumerate(sources)
                for j, p in enumerate(sequence(s.get("principals")))
            ]
            if not principals and not at_ingress:
                findings.append(
                    policy.finding("authorization", f"{path}.from", "allows any caller: name the principals")
                )
            from_the_edge = bool(principals) and all(p in external_principals for _, _, p in principals)
            if not sequence(rule.get("to")) and not (from_the_edge and edge_decides):
                findings.append(
                    policy.finding(
                        "authorization", f"{path}.to", "allows any operation: name methods and paths"
                    )
                )
            for i, j, principal in principals:
                field = f"{path}.from[{i}].source.principals[{j}]"
                match = _PRINCIPAL.match(principal)
                if "*" in principal or match is None:
                    findings.append(
                        policy.finding(
                            "authorization",
                            field,
                            f"{principal!r} is not one workload's identity (cluster.local/ns/NS/sa/NAME)",
                        )
                    )
                elif (
                    principal not in external_principals
                    and (match["namespace"], match["account"]) not in accounts
                ):
                    findings.append(
                        policy.finding(
                            "authorization",
                            field,
                            f"no ServiceAccount {match['namespace']}/{match['account']} in the manifests",
                        )
                    )
    return findings


def check_mesh_labels(manifests: Sequence[Manifest]) -> list[Finding]:
    """Pods carry app and version (Kiali, canonical names, subsets) and get a sidecar."""
    injected = {
        n.name
        for n in of_kind(manifests, "Namespace")
        if mapping(n.metadata.get("labels")).get("istio-injection") == "enabled"
        or "istio.io/rev" in mapping(n.metadata.get("labels"))
    }
    findings = []
    for template in pod_templates(manifests):
        for label in ("app", "version"):
            if not template.labels.get(label):
                findings.append(
                    template.finding(
                        "mesh-labels",
                        f"spec.template.metadata.labels.{label}",
                        "missing: Kiali and Istio's telemetry group pods by it",
                    )
                )
        if template.namespace not in injected:
            findings.append(
                template.finding(
                    "mesh-labels",
                    "metadata.namespace",
                    f"namespace {template.namespace} has no istio-injection=enabled Namespace in the manifests",
                )
            )
        if (
            template.labels.get("sidecar.istio.io/inject") == "false"
            or template.annotations.get("sidecar.istio.io/inject") == "false"
        ):
            findings.append(
                template.finding(
                    "mesh-labels", "spec.template.metadata", "opts out of the sidecar: outside the mesh"
                )
            )
    return findings
