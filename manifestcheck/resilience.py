"""The fault-tolerance policy, against how istiod and Envoy really apply it.

Each rule comes from ../shared/reference/istio-to-envoy.md ("Surprises that
tests must respect") or from how the services behave (gunicorn's keep-alive,
the gateway's own timeout). A policy can pass the schema and still do nothing:
an outlier detector that can never eject, a retry that skips the app's 503, a
route timeout the client gives up before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gateway.config import GatewaySettings
from localmesh.translate.durations import parse_seconds
from manifestcheck.model import (
    Finding,
    Manifest,
    PodTemplate,
    container_env,
    labels_match,
    mapping,
    of_kind,
    pod_templates,
    resolve_host,
    sequence,
    services_by_fqdn,
)
from manifestcheck.references import MESH, http_routes, service_pods
from manifestcheck.workloads import gunicorn_setting

# Envoy's default: with it, fewer than 10 hosts are never ejected.
DEFAULT_MAX_EJECTION_PERCENT = 10
# Envoy's consecutive_5xx when a DestinationRule's outlierDetection leaves it out (istio-to-envoy.md).
DEFAULT_CONSECUTIVE_5XX = 5
RETRY_ON_503 = {"5xx", "gateway-error", "503"}
RETRY_ON_PER_TRY_TIMEOUT = {"5xx", "gateway-error", "reset"}
POOL_THRESHOLDS = (
    ("tcp", "maxConnections"),
    ("http", "http1MaxPendingRequests"),
    ("http", "http2MaxRequests"),
    ("http", "maxRetries"),
    ("http", "maxRequestsPerConnection"),
)


@dataclass(frozen=True)
class ServiceClient:
    """How an app of this repository calls another service: the URL and its own timeout, env or default."""

    url_env: str
    default_url: str
    timeout_env: str
    default_timeout: float


# gateway/config.py's CALCULATOR_URL and CALCULATOR_TIMEOUT_SECONDS, with its defaults.
CLIENTS = {
    "gateway.app:create_app()": ServiceClient(
        "CALCULATOR_URL",
        GatewaySettings.calculator_url,
        "CALCULATOR_TIMEOUT_SECONDS",
        GatewaySettings.calculator_timeout_seconds,
    ),
}


def parse_duration(value: Any) -> float | None:
    """Seconds of an Istio duration ("30s", "1.5s", "500ms", "1m30s"), or None if malformed:
    the local mesh's parser (localmesh/translate/durations.py), the one the Envoys get."""
    try:
        return float(parse_seconds(value))
    except ValueError:
        return None


def applies_to_mesh(vs: Manifest) -> bool:
    gateways = sequence(vs.spec.get("gateways"))
    return not gateways or MESH in gateways


@dataclass(frozen=True)
class Client:
    template: PodTemplate
    container: str
    host: str
    timeout: float


def clients(manifests: Sequence[Manifest]) -> list[Client]:
    found = []
    for template in pod_templates(manifests):
        for _, container in template.containers():
            words = [str(w) for w in sequence(container.get("args")) + sequence(container.get("command"))]
            client = next((CLIENTS[w] for w in words if w in CLIENTS), None)
            if client is None:
                continue
            env = container_env(container)
            host = urlsplit(env.get(client.url_env, client.default_url)).hostname or ""
            try:
                timeout = float(env.get(client.timeout_env, client.default_timeout))
            except ValueError:
                continue
            found.append(
                Client(template, str(container.get("name")), resolve_host(host, template.namespace), timeout)
            )
    return found


def _duration_fields(path: str, route: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    if "timeout" in route:
        yield f"{path}.timeout", route["timeout"]
    retries = mapping(route.get("retries"))
    if "perTryTimeout" in retries:
        yield f"{path}.retries.perTryTimeout", retries["perTryTimeout"]
    delay = mapping(mapping(route.get("fault")).get("delay"))
    if "fixedDelay" in delay:
        yield f"{path}.fault.delay.fixedDelay", delay["fixedDelay"]


def _policy_blocks(rule: Manifest) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield "spec.trafficPolicy", mapping(rule.spec.get("trafficPolicy"))
    for index, subset in enumerate(sequence(rule.spec.get("subsets"))):
        policy = mapping(subset).get("trafficPolicy")
        if policy is not None:
            yield f"spec.subsets[{index}].trafficPolicy", mapping(policy)


def check_timeouts(manifests: Sequence[Manifest]) -> list[Finding]:
    """Durations parse; mesh routes have a timeout, below their callers' own and above each try's."""
    findings = []
    callers = clients(manifests)
    services = services_by_fqdn(manifests)
    for vs in of_kind(manifests, "VirtualService"):
        mesh = applies_to_mesh(vs)
        hosts = {resolve_host(str(h), vs.namespace) for h in sequence(vs.spec.get("hosts"))}
        for path, route in http_routes(vs):
            for field, value in _duration_fields(path, route):
                seconds = parse_duration(value)
                if seconds is None or seconds < 0.001:
                    findings.append(
                        vs.finding(
                            "timeouts", field, f"{value!r} is not a duration of at least 1ms (e.g. 3s, 500ms)"
                        )
                    )
            timeout = parse_duration(route.get("timeout"))
            per_try = parse_duration(mapping(route.get("retries")).get("perTryTimeout"))
            if mesh and "timeout" not in route:
                findings.append(
                    vs.finding(
                        "timeouts",
                        f"{path}.timeout",
                        "missing: Istio then sets no timeout (0s), a stuck call waits for ever",
                    )
                )
            if timeout and per_try and per_try > timeout:
                findings.append(
                    vs.finding(
                        "timeouts",
                        f"{path}.retries.perTryTimeout",
                        f"{per_try:g}s is above the route timeout {timeout:g}s",
                    )
                )
            if not timeout:
                continue
            for client in callers:
                if mesh and client.host in hosts and timeout >= client.timeout:
                    findings.append(
                        vs.finding(
                            "timeouts",
                            f"{path}.timeout",
                            f"{timeout:g}s is not below {client.template.owner.name}'s own {client.timeout:g}s: "
                            "the client gives up before the mesh answers 504",
                        )
                    )
            if mesh:
                continue
            # An ingress route to a service that is itself a client must wait longer than it does.
            for entry in sequence(route.get("route")):
                host = resolve_host(
                    str(mapping(mapping(entry).get("destination")).get("host", "")), vs.namespace
                )
                service = services.get(host)
                if service is None:
                    continue
                pods = service_pods(service, pod_templates(manifests))
                for client in callers:
                    if client.template in pods and timeout <= client.timeout:
                        findings.append(
                            vs.finding(
                                "timeouts",
                                f"{path}.timeout",
                                f"{timeout:g}s is not above {client.template.owner.name}'s {client.timeout:g}s wait for its "
                                "upstream: the ingress cuts the gateway's own error answer",
                            )
                        )
    for rule in of_kind(manifests, "DestinationRule"):
        for path, policy in _policy_blocks(rule):
            pool = mapping(policy.get("connectionPool"))
            outlier = mapping(policy.get("outlierDetection"))
            candidates = [
                (f"{path}.connectionPool.tcp.connectTimeout", mapping(pool.get("tcp")).get("connectTimeout")),
                (f"{path}.connectionPool.http.idleTimeout", mapping(pool.get("http")).get("idleTimeout")),
                (f"{path}.outlierDetection.interval", outlier.get("interval")),
                (f"{path}.outlierDetection.baseEjectionTime", outlier.get("baseEjectionTime")),
            ]
            for field, value in candidates:
                if value is not None and (parse_duration(value) or 0) < 0.001:
                    findings.append(
                        rule.finding("timeouts", field, f"{value!r} is not a duration of at least 1ms")
                    )
    return findings


def check_retries(manifests: Sequence[Manifest]) -> list[Finding]:
    """Mesh routes say how they retry, and a retry covers the app's 503 and connection resets."""
    findings = []
    for vs in of_kind(manifests, "VirtualService"):
        if not applies_to_mesh(vs):
            continue
        for path, route in http_routes(vs):
            if "retries" not in route:
                findings.append(
                    vs.finding(
                        "retries",
                        f"{path}.retries",
                        "missing: Istio's default (2 attempts on connect failures) never retries the app's 503; "
                        "set retries, or attempts: 0 to say none",
                    )
                )
                continue
            retries = mapping(route.get("retries"))
            if not retries.get("attempts"):
                continue
            tokens = {t.strip() for t in str(retries.get("retryOn", "")).split(",") if t.strip()}
            if not tokens & RETRY_ON_503:
                findings.append(
                    vs.finding(
                        "retries",
                        f"{path}.retries.retryOn",
                        f"{sorted(tokens)} does not retry the app's 503: add gateway-error (or 503)",
                    )
                )
            if "5xx" in tokens:
                findings.append(
                    vs.finding(
                        "retries",
                        f"{path}.retries.retryOn",
                        "5xx retries an application's 500, which every host answers alike to the same "
                        "request (a query of death, tripled): use gateway-error",
                    )
                )
            if "reset" not in tokens:
                findings.append(
                    vs.finding(
                        "retries",
                        f"{path}.retries.retryOn",
                        f"{sorted(tokens)} does not retry a reset connection: add reset",
                    )
                )
            if "perTryTimeout" in retries and not tokens & RETRY_ON_PER_TRY_TIMEOUT:
                findings.append(
                    vs.finding(
                        "retries",
                        f"{path}.retries.perTryTimeout",
                        "a try that times out is retried only if retryOn has 5xx, gateway-error or reset",
                    )
                )
    return findings


@dataclass(frozen=True)
class Cluster:
    """One Envoy cluster a DestinationRule makes: the host's, or one subset's."""

    rule: Manifest
    name: str
    pods: tuple[PodTemplate, ...]
    connection_pool: tuple[str, Mapping[str, Any]] | None
    outlier_detection: tuple[str, Mapping[str, Any]] | None

    @property
    def hosts(self) -> int:
        return sum(pod.replicas for pod in self.pods)


def clusters(manifests: Sequence[Manifest]) -> list[Cluster]:
    """The clusters of every DestinationRule, each with the policy blocks it gets (a subset's block replaces the host's)."""
    services = services_by_fqdn(manifests)
    templates = pod_templates(manifests)
    found = []
    for rule in of_kind(manifests, "DestinationRule"):
        service = services.get(resolve_host(str(rule.spec.get("host", "")), rule.namespace))
        pods = service_pods(service, templates) if service is not None else []
        top = mapping(rule.spec.get("trafficPolicy"))

        def block(
            path: str, policy: Mapping[str, Any], name: str, inherited: tuple[str, Mapping[str, Any]] | None
        ):
            return (f"{path}.{name}", mapping(policy[name])) if name in policy else inherited

        host_pool = block("spec.trafficPolicy", top, "connectionPool", None)
        host_outlier = block("spec.trafficPolicy", top, "outlierDetection", None)
        found.append(Cluster(rule, "(all subsets)", tuple(pods), host_pool, host_outlier))
        for index, subset in enumerate(sequence(rule.spec.get("subsets"))):
            subset = mapping(subset)
            labels = mapping(subset.get("labels"))
            policy = mapping(subset.get("trafficPolicy"))
            path = f"spec.subsets[{index}].trafficPolicy"
            found.append(
                Cluster(
                    rule,
                    str(subset.get("name")),
                    tuple(p for p in pods if labels_match(labels, p.labels)),
                    block(path, policy, "connectionPool", host_pool),
                    block(path, policy, "outlierDetection", host_outlier),
                )
            )
    return found


def _keepalive(pods: Sequence[PodTemplate]) -> float | None:
    values = [
        v
        for pod in pods
        for _, container in pod.containers()
        if (v := gunicorn_setting(container, "KEEPALIVE_SECONDS")) is not None
    ]
    return min(values) if values else None


def check_connection_pool(manifests: Sequence[Manifest]) -> list[Finding]:
    """A circuit breaker that fails fast, no threshold of 0, and idle connections closed before the app closes them."""
    findings: dict[tuple[str, str, str], Finding] = {}

    def report(rule: Manifest, field: str, message: str) -> None:
        findings.setdefault((rule.source, field, message), rule.finding("connection-pool", field, message))

    for cluster in clusters(manifests):
        rule = cluster.rule
        if cluster.connection_pool is None:
            report(
                rule,
                "spec.trafficPolicy.connectionPool",
                "missing: no circuit breaker (Istio's limits are all 2^32-1)",
            )
            continue
        path, pool = cluster.connection_pool
        for section, name in POOL_THRESHOLDS:
            if mapping(pool.get(section)).get(name) == 0:
                report(
                    rule, f"{path}.{section}.{name}", "0 means unset to istiod, not zero: use 1 or remove it"
                )
        http = mapping(pool.get("http"))
        if not http.get("http1MaxPendingRequests"):
            report(
                rule,
                f"{path}.http.http1MaxPendingRequests",
                "missing: HTTP/1 requests queue without bound behind maxConnections, nothing overflows (no 503 UO)",
            )
        keepalive = _keepalive(cluster.pods)
        idle = parse_duration(http.get("idleTimeout"))
        if keepalive is None:
            continue
        if idle is None:
            report(
                rule,
                f"{path}.http.idleTimeout",
                f"missing: Envoy keeps idle connections 1h, the app closes them after {keepalive:g}s (503 UC race)",
            )
        elif idle >= keepalive:
            report(
                rule,
                f"{path}.http.idleTimeout",
                f"{idle:g}s is not below the app's keep-alive {keepalive:g}s: Envoy may reuse a connection the app is closing (503 UC)",
            )
    return list(findings.values())


def check_outlier_detection(manifests: Sequence[Manifest]) -> list[Finding]:
    """An outlier detector that can really eject a host of every cluster with two or more."""
    findings: dict[tuple[str, str, str], Finding] = {}

    def report(rule: Manifest, field: str, message: str) -> None:
        findings.setdefault((rule.source, field, message), rule.finding("outlier-detection", field, message))

    for cluster in clusters(manifests):
        rule = cluster.rule
        if cluster.outlier_detection is None:
            report(
                rule,
                "spec.trafficPolicy.outlierDetection",
                "missing: a failing pod keeps its share of the traffic",
            )
            continue
        path, outlier = cluster.outlier_detection
        local_origin = outlier.get("splitExternalLocalOriginErrors") and outlier.get("consecutiveLocalOriginFailures")
        if outlier.get("consecutive5xxErrors") == 0 and not outlier.get("consecutiveGatewayErrors") and not local_origin:
            report(
                rule,
                f"{path}.consecutive5xxErrors",
                "0 with no consecutiveGatewayErrors or consecutiveLocalOriginFailures: nothing ever ejects",
            )
        if outlier.get("consecutive5xxErrors", DEFAULT_CONSECUTIVE_5XX) != 0:
            report(
                rule,
                f"{path}.consecutive5xxErrors",
                "counts an application's 500 towards ejection (Istio's default is 5 when absent): a few "
                "bad requests eject healthy hosts; set 0 and eject on consecutiveGatewayErrors",
            )
        percent = outlier.get("maxEjectionPercent", DEFAULT_MAX_EJECTION_PERCENT)
        hosts = cluster.hosts
        if hosts >= 2 and isinstance(percent, int) and 100 / hosts > percent:
            report(
                rule,
                f"{path}.maxEjectionPercent",
                f"{percent}% never ejects one of the {hosts} hosts of cluster {cluster.name} "
                f"(Envoy ejects only while 100*ejected/hosts <= it; needs >= {100 / hosts:.0f})",
            )
    return list(findings.values())
