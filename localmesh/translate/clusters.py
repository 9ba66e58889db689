"""Services and DestinationRules to Envoy clusters, as istiod's cluster_traffic_policy.go builds them."""

from __future__ import annotations

from localmesh.translate.destination_rules import ConnectionPool, OutlierDetection, TrafficPolicy
from localmesh.translate.endpoints import Endpoints, LocalEndpoint
from localmesh.translate.manifests import Manifests
from localmesh.translate.routes import cluster_name

MAX_UINT32 = 4294967295
DEFAULT_CONNECT_TIMEOUT = "10s"  # meshConfig.connectTimeout
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
HTTP_PROTOCOL_OPTIONS_TYPE = f"type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}"


def circuit_breakers(pool: ConnectionPool) -> dict:
    """Always written, 2^32-1 unless set (> 0): Envoy's own 1024/1024/1024/3 never apply under Istio."""
    thresholds = {
        "max_connections": pool.max_connections or MAX_UINT32,
        "max_pending_requests": pool.http1_max_pending_requests or MAX_UINT32,
        "max_requests": pool.http2_max_requests or MAX_UINT32,
        "max_retries": pool.max_retries or MAX_UINT32,
        "track_remaining": True,
    }
    return {"thresholds": [thresholds]}


def http_protocol_options(pool: ConnectionPool) -> dict:
    """HTTP/1.1 to the upstream (gunicorn), with the connection pool's per-connection limits."""
    options: dict = {"@type": HTTP_PROTOCOL_OPTIONS_TYPE, "explicit_http_config": {"http_protocol_options": {}}}
    common = {}
    idle_timeout = pool.http_idle_timeout or pool.tcp_idle_timeout  # http's wins, as in istiod
    if idle_timeout is not None:
        common["idle_timeout"] = idle_timeout
    if pool.max_requests_per_connection > 0:
        common["max_requests_per_connection"] = pool.max_requests_per_connection
    if pool.max_connection_duration is not None:
        common["max_connection_duration"] = pool.max_connection_duration
    if common:
        options["common_http_protocol_options"] = common
    return options


def outlier_detection(outlier: OutlierDetection) -> dict:
    """istiod's applyOutlierDetection: only consecutive errors eject (success-rate ejection off)."""
    out: dict = {"enforcing_success_rate": 0}
    if outlier.consecutive_5xx_errors is not None:
        out["consecutive_5xx"] = outlier.consecutive_5xx_errors
        out["enforcing_consecutive_5xx"] = 100 if outlier.consecutive_5xx_errors > 0 else 0
    if outlier.consecutive_gateway_errors is not None:
        out["consecutive_gateway_failure"] = outlier.consecutive_gateway_errors
        out["enforcing_consecutive_gateway_failure"] = 100 if outlier.consecutive_gateway_errors > 0 else 0
    if outlier.interval is not None:
        out["interval"] = outlier.interval
    if outlier.base_ejection_time is not None:
        out["base_ejection_time"] = outlier.base_ejection_time
    if outlier.max_ejection_percent > 0:
        out["max_ejection_percent"] = outlier.max_ejection_percent
    if outlier.split_external_local_origin_errors:
        out["split_external_local_origin_errors"] = True
        if (outlier.consecutive_local_origin_failures or 0) > 0:
            out["consecutive_local_origin_failure"] = outlier.consecutive_local_origin_failures
            out["enforcing_consecutive_local_origin_failure"] = 100
        out["enforcing_local_origin_success_rate"] = 0
    return out


def load_assignment(name: str, endpoints: tuple[LocalEndpoint, ...]) -> dict:
    lb_endpoints = [
        {
            "endpoint": {
                "address": {"socket_address": {"address": endpoint.address, "port_value": endpoint.port}},
                "hostname": endpoint.pod,
            }
        }
        for endpoint in endpoints
    ]
    return {"cluster_name": name, "endpoints": [{"lb_endpoints": lb_endpoints}] if lb_endpoints else []}


def cluster(name: str, policy: TrafficPolicy, endpoints: tuple[LocalEndpoint, ...]) -> dict:
    """One outbound cluster: STATIC local endpoints where istiod would use EDS."""
    pool = policy.connection_pool or ConnectionPool()
    out: dict = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": pool.connect_timeout or DEFAULT_CONNECT_TIMEOUT,
        "lb_policy": policy.load_balancer or "LEAST_REQUEST",  # istiod's default, not Envoy's ROUND_ROBIN
        "circuit_breakers": circuit_breakers(pool),
        "common_lb_config": {},
        "typed_extension_protocol_options": {HTTP_PROTOCOL_OPTIONS: http_protocol_options(pool)},
        "load_assignment": load_assignment(name, endpoints),
    }
    if policy.outlier_detection is not None:
        out["outlier_detection"] = outlier_detection(policy.outlier_detection)
        # istiod disables Envoy's panic mode (default 50%) whenever outlierDetection is set.
        out["common_lb_config"]["healthy_panic_threshold"] = {"value": policy.outlier_detection.min_health_percent}
    return out


def outbound_clusters(manifests: Manifests, endpoints: Endpoints, proxy_namespace: str) -> list[dict]:
    """Every Service port, and each subset of its DestinationRule, as a proxy in ``proxy_namespace`` sees them."""
    clusters = []
    for fqdn in sorted(manifests.services):
        service = manifests.services[fqdn]
        rule = manifests.destination_rule(fqdn, proxy_namespace)
        for port in service.ports:
            members = tuple(endpoints.get((fqdn, port.port), ()))
            top = rule.traffic_policy if rule else TrafficPolicy()
            clusters.append(cluster(cluster_name(port.port, "", fqdn), top, members))
            for subset in rule.subsets if rule else ():
                selected = tuple(e for e in members if subset.labels.items() <= e.labels.items())
                clusters.append(
                    cluster(cluster_name(port.port, subset.name, fqdn), rule.policy_for(subset.name), selected)
                )
    return clusters
