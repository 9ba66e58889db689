"""DestinationRule trafficPolicy and subsets -> Envoy clusters: each field and each istiod default."""

from __future__ import annotations

from tests.localmesh.translate.support import (
    CALC,
    GW,
    calculator_clusters,
    clusters,
    ingress,
    manifests,
    sidecar,
    with_istio,
)

MAX = 4294967295
ALL, V1, V2 = (f"outbound|80|{subset}|{CALC}" for subset in ("", "v1", "v2"))
HPO = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def addresses(cluster: dict) -> list[tuple[str, int]]:
    return [
        (
            e["endpoint"]["address"]["socket_address"]["address"],
            e["endpoint"]["address"]["socket_address"]["port_value"],
        )
        for group in cluster["load_assignment"]["endpoints"]
        for e in group["lb_endpoints"]
    ]


def test_service_without_destination_rule_gets_istio_defaults():
    cluster = clusters(sidecar(manifests()))[f"outbound|80||{GW}"]
    assert cluster == {
        "name": f"outbound|80||{GW}",
        "type": "STATIC",
        "connect_timeout": "10s",
        "lb_policy": "LEAST_REQUEST",
        "circuit_breakers": {
            "thresholds": [
                {
                    "max_connections": MAX,
                    "max_pending_requests": MAX,
                    "max_requests": MAX,
                    "max_retries": MAX,
                    "track_remaining": True,
                }
            ]
        },
        "common_lb_config": {},
        "typed_extension_protocol_options": {
            HPO: {"@type": f"type.googleapis.com/{HPO}", "explicit_http_config": {"http_protocol_options": {}}}
        },
        "load_assignment": {
            "cluster_name": f"outbound|80||{GW}",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 18011}},
                                "hostname": "gateway-0",
                            }
                        },
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 18012}},
                                "hostname": "gateway-1",
                            }
                        },
                    ]
                }
            ],
        },
    }
    assert "outlier_detection" not in cluster


def test_every_service_port_and_subset_has_its_cluster_with_its_endpoints():
    built = clusters(sidecar(manifests()))
    assert set(built) == {ALL, V1, V2, f"outbound|80||{GW}"}
    assert addresses(built[ALL]) == [("127.0.0.1", 18001), ("127.0.0.1", 18002), ("127.0.0.1", 18003)]
    assert addresses(built[V1]) == [("127.0.0.1", 18001), ("127.0.0.1", 18002)]
    assert addresses(built[V2]) == [("127.0.0.1", 18003)]


def test_connection_pool_fields():
    cluster = calculator_clusters("""
        trafficPolicy:
          connectionPool:
            tcp: {maxConnections: 1, connectTimeout: 250ms, maxConnectionDuration: 1h}
            http: {http1MaxPendingRequests: 2, http2MaxRequests: 3, maxRetries: 4,
                   maxRequestsPerConnection: 5, idleTimeout: 30s}
    """)[ALL]
    assert cluster["circuit_breakers"] == {
        "thresholds": [
            {
                "max_connections": 1,
                "max_pending_requests": 2,
                "max_requests": 3,
                "max_retries": 4,
                "track_remaining": True,
            }
        ]
    }
    assert cluster["connect_timeout"] == "0.250s"
    assert cluster["typed_extension_protocol_options"][HPO]["common_http_protocol_options"] == {
        "idle_timeout": "30s",
        "max_requests_per_connection": 5,
        "max_connection_duration": "3600s",
    }


def test_unset_or_zero_thresholds_stay_at_2_to_the_32_minus_1():
    cluster = calculator_clusters("""
        trafficPolicy:
          connectionPool:
            tcp: {maxConnections: 0}
            http: {http1MaxPendingRequests: 1}
    """)[ALL]
    assert cluster["circuit_breakers"]["thresholds"][0] == {
        "max_connections": MAX,
        "max_pending_requests": 1,
        "max_requests": MAX,
        "max_retries": MAX,
        "track_remaining": True,
    }


def test_tcp_idle_timeout_is_used_when_http_has_none():
    cluster = calculator_clusters("trafficPolicy: {connectionPool: {tcp: {idleTimeout: 5m}}}")[ALL]
    assert cluster["typed_extension_protocol_options"][HPO]["common_http_protocol_options"] == {"idle_timeout": "300s"}


def test_outlier_detection_fields_and_panic_threshold_off():
    cluster = calculator_clusters("""
        trafficPolicy:
          outlierDetection:
            consecutive5xxErrors: 3
            consecutiveGatewayErrors: 2
            interval: 1s
            baseEjectionTime: 15s
            maxEjectionPercent: 100
    """)[ALL]
    assert cluster["outlier_detection"] == {
        "enforcing_success_rate": 0,
        "consecutive_5xx": 3,
        "enforcing_consecutive_5xx": 100,
        "consecutive_gateway_failure": 2,
        "enforcing_consecutive_gateway_failure": 100,
        "interval": "1s",
        "base_ejection_time": "15s",
        "max_ejection_percent": 100,
    }
    assert cluster["common_lb_config"] == {"healthy_panic_threshold": {"value": 0}}


def test_empty_outlier_detection_keeps_envoy_defaults_but_disables_panic():
    cluster = calculator_clusters("trafficPolicy: {outlierDetection: {}}")[ALL]
    assert cluster["outlier_detection"] == {"enforcing_success_rate": 0}
    assert cluster["common_lb_config"] == {"healthy_panic_threshold": {"value": 0}}


def test_zero_consecutive_errors_turn_that_detection_off():
    cluster = calculator_clusters("trafficPolicy: {outlierDetection: {consecutive5xxErrors: 0, minHealthPercent: 40}}")[
        ALL
    ]
    assert cluster["outlier_detection"] == {
        "enforcing_success_rate": 0,
        "consecutive_5xx": 0,
        "enforcing_consecutive_5xx": 0,
    }
    assert cluster["common_lb_config"] == {"healthy_panic_threshold": {"value": 40}}


def test_local_origin_errors():
    cluster = calculator_clusters("""
        trafficPolicy:
          outlierDetection: {splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2}
    """)[ALL]
    assert cluster["outlier_detection"] == {
        "enforcing_success_rate": 0,
        "split_external_local_origin_errors": True,
        "consecutive_local_origin_failure": 2,
        "enforcing_consecutive_local_origin_failure": 100,
        "enforcing_local_origin_success_rate": 0,
    }


def test_load_balancer_simple():
    for simple, policy in (
        ("ROUND_ROBIN", "ROUND_ROBIN"),
        ("RANDOM", "RANDOM"),
        ("LEAST_CONN", "LEAST_REQUEST"),
        ("LEAST_REQUEST", "LEAST_REQUEST"),
        ("UNSPECIFIED", "LEAST_REQUEST"),
    ):
        assert calculator_clusters(f"trafficPolicy: {{loadBalancer: {{simple: {simple}}}}}")[ALL]["lb_policy"] == policy


def test_subset_policy_replaces_whole_blocks_without_field_merge():
    built = calculator_clusters("""
        trafficPolicy:
          loadBalancer: {simple: ROUND_ROBIN}
          connectionPool:
            tcp: {maxConnections: 100}
            http: {http1MaxPendingRequests: 50}
          outlierDetection: {consecutive5xxErrors: 7}
        subsets:
        - name: v1
          labels: {version: v1}
          trafficPolicy:
            connectionPool:
              http: {http1MaxPendingRequests: 1}
        - name: v2
          labels: {version: v2}
    """)
    v1 = built[V1]
    # The subset's connectionPool replaces the top one: maxConnections is back to the default.
    assert v1["circuit_breakers"]["thresholds"][0]["max_connections"] == MAX
    assert v1["circuit_breakers"]["thresholds"][0]["max_pending_requests"] == 1
    # Blocks the subset does not set come from the top-level policy.
    assert v1["lb_policy"] == "ROUND_ROBIN"
    assert v1["outlier_detection"]["consecutive_5xx"] == 7
    # A subset without policy gets the whole top-level policy.
    assert built[V2]["circuit_breakers"] == built[ALL]["circuit_breakers"]
    assert built[ALL]["circuit_breakers"]["thresholds"][0]["max_connections"] == 100


def test_tls_disable_is_plaintext_as_locally():
    assert "transport_socket" not in calculator_clusters("trafficPolicy: {tls: {mode: DISABLE}}")[ALL]


def test_destination_rule_exported_to_its_namespace_only_does_not_apply_at_the_ingress():
    dr = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: calculator, namespace: meshcalc}
spec:
  host: calculator
  exportTo: ["."]
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
"""
    mesh = manifests(base=with_istio(dr))
    assert clusters(sidecar(mesh))[ALL]["lb_policy"] == "RANDOM"  # the sidecar runs in meshcalc
    assert clusters(ingress(mesh))[ALL]["lb_policy"] == "LEAST_REQUEST"  # the ingress runs in istio-system


def test_ingress_clusters_get_the_destination_rules_too():
    assert clusters(ingress(manifests()))[V1] == clusters(sidecar(manifests()))[V1]
