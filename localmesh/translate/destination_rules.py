"""Istio DestinationRule: traffic policy (connection pool, outlier detection, load balancer) and subsets."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from localmesh.translate.durations import duration
from localmesh.translate.errors import Fields, Origin
from localmesh.translate.kube import resolve_host
from localmesh.translate.resources import Resource
from localmesh.translate.virtual_services import parse_export_to

# LEAST_CONN is the deprecated name of LEAST_REQUEST (istiod maps both the same way).
LOAD_BALANCERS = {
    "UNSPECIFIED": "LEAST_REQUEST",
    "LEAST_REQUEST": "LEAST_REQUEST",
    "LEAST_CONN": "LEAST_REQUEST",
    "ROUND_ROBIN": "ROUND_ROBIN",
    "RANDOM": "RANDOM",
}


@dataclass(frozen=True)
class ConnectionPool:
    max_connections: int = 0
    connect_timeout: str | None = None
    max_connection_duration: str | None = None
    tcp_idle_timeout: str | None = None
    http1_max_pending_requests: int = 0
    http2_max_requests: int = 0
    max_requests_per_connection: int = 0
    max_retries: int = 0
    http_idle_timeout: str | None = None


@dataclass(frozen=True)
class OutlierDetection:
    consecutive_5xx_errors: int | None = None
    consecutive_gateway_errors: int | None = None
    interval: str | None = None
    base_ejection_time: str | None = None
    max_ejection_percent: int = 0
    min_health_percent: int = 0
    split_external_local_origin_errors: bool = False
    consecutive_local_origin_failures: int | None = None


@dataclass(frozen=True)
class TrafficPolicy:
    connection_pool: ConnectionPool | None = None
    outlier_detection: OutlierDetection | None = None
    load_balancer: str | None = None  # Envoy's lb_policy; None -> istiod's default

    def overridden_by(self, subset: TrafficPolicy | None) -> TrafficPolicy:
        """istiod's MergeTrafficPolicy: a block the subset sets replaces the whole block, no field merge."""
        if subset is None:
            return self
        return replace(
            self,
            connection_pool=self.connection_pool if subset.connection_pool is None else subset.connection_pool,
            outlier_detection=self.outlier_detection if subset.outlier_detection is None else subset.outlier_detection,
            load_balancer=self.load_balancer if subset.load_balancer is None else subset.load_balancer,
        )


@dataclass(frozen=True)
class Subset:
    name: str
    labels: dict[str, str] = field(hash=False)
    traffic_policy: TrafficPolicy | None


@dataclass(frozen=True)
class DestinationRule:
    name: str
    namespace: str
    host: str
    traffic_policy: TrafficPolicy
    subsets: tuple[Subset, ...]
    export_to: tuple[str, ...]
    origin: Origin

    def subset(self, name: str) -> Subset | None:
        return next((subset for subset in self.subsets if subset.name == name), None)

    def policy_for(self, subset: str) -> TrafficPolicy:
        if not subset:
            return self.traffic_policy
        found = self.subset(subset)
        return self.traffic_policy.overridden_by(found.traffic_policy if found else None)


def _optional_duration(fields: Fields, key: str) -> str | None:
    text = fields.raw(key)
    return None if text is None else duration(text, fields.at(key), fields.origin)


def _connection_pool(pool: Fields) -> ConnectionPool:
    values = {}
    tcp = pool.mapping("tcp")
    if tcp is not None:
        values["max_connections"] = tcp.integer("maxConnections", 0)
        values["connect_timeout"] = _optional_duration(tcp, "connectTimeout")
        values["max_connection_duration"] = _optional_duration(tcp, "maxConnectionDuration")
        values["tcp_idle_timeout"] = _optional_duration(tcp, "idleTimeout")
        tcp.finish()
    http = pool.mapping("http")
    if http is not None:
        values["http1_max_pending_requests"] = http.integer("http1MaxPendingRequests", 0)
        values["http2_max_requests"] = http.integer("http2MaxRequests", 0)
        values["max_requests_per_connection"] = http.integer("maxRequestsPerConnection", 0)
        values["max_retries"] = http.integer("maxRetries", 0)
        values["http_idle_timeout"] = _optional_duration(http, "idleTimeout")
        upgrade = http.text("h2UpgradePolicy", "DEFAULT")
        if upgrade not in ("DEFAULT", "DO_NOT_UPGRADE"):
            # The local upstreams are HTTP/1.1 gunicorn processes.
            raise pool.origin.unsupported(http.at("h2UpgradePolicy"), upgrade)
        http.finish()
    pool.finish()
    return ConnectionPool(**values)


def _outlier_detection(outlier: Fields) -> OutlierDetection:
    result = OutlierDetection(
        consecutive_5xx_errors=outlier.integer("consecutive5xxErrors"),
        consecutive_gateway_errors=outlier.integer("consecutiveGatewayErrors"),
        interval=_optional_duration(outlier, "interval"),
        base_ejection_time=_optional_duration(outlier, "baseEjectionTime"),
        max_ejection_percent=outlier.integer("maxEjectionPercent", 0),
        min_health_percent=outlier.integer("minHealthPercent", 0),
        split_external_local_origin_errors=outlier.flag("splitExternalLocalOriginErrors", False),
        consecutive_local_origin_failures=outlier.integer("consecutiveLocalOriginFailures"),
    )
    for key in ("maxEjectionPercent", "minHealthPercent"):
        if outlier.has(key) and outlier.value[key] > 100:
            raise outlier.origin.invalid(outlier.at(key), "must be a percentage, 0 to 100")
    outlier.finish()
    return result


def _traffic_policy(policy: Fields | None) -> TrafficPolicy | None:
    if policy is None:
        return None
    pool = policy.mapping("connectionPool")
    outlier = policy.mapping("outlierDetection")
    balancer = policy.mapping("loadBalancer")
    load_balancer = None
    if balancer is not None:
        simple = balancer.text("simple")
        if simple is not None:
            if simple not in LOAD_BALANCERS:
                raise policy.origin.unsupported(balancer.at("simple"), simple)
            load_balancer = LOAD_BALANCERS[simple]
        balancer.finish()
    tls = policy.mapping("tls")
    if tls is not None:
        # Plaintext is what the local mesh does; any other mode needs the cluster's certificates.
        mode = tls.text("mode", "DISABLE")
        if mode != "DISABLE":
            raise policy.origin.unsupported(tls.at("mode"), mode)
        tls.finish()
    result = TrafficPolicy(
        connection_pool=_connection_pool(pool) if pool is not None else None,
        outlier_detection=_outlier_detection(outlier) if outlier is not None else None,
        load_balancer=load_balancer,
    )
    policy.finish()
    return result


def parse_destination_rule(resource: Resource) -> DestinationRule:
    origin = resource.origin
    spec = Fields(resource.spec, "spec", origin)
    host = spec.text("host", required=True)
    policy = _traffic_policy(spec.mapping("trafficPolicy")) or TrafficPolicy()
    subsets = []
    for subset in spec.mappings("subsets"):
        name = subset.text("name", required=True)
        if any(existing.name == name for existing in subsets):
            raise origin.invalid(subset.at("name"), f"subset {name!r} is defined twice")
        subsets.append(Subset(name, subset.string_map("labels"), _traffic_policy(subset.mapping("trafficPolicy"))))
        subset.finish()
    export_to = parse_export_to(spec)
    spec.finish()
    return DestinationRule(
        resource.name,
        resource.namespace,
        resolve_host(host, resource.namespace),
        policy,
        tuple(subsets),
        export_to,
        origin,
    )
