"""The bootstraps as a whole: admin, node, listener, filter chain, access log, virtual hosts and domains."""

from __future__ import annotations

import pytest

from localmesh.translate import INGRESS_STAT_PREFIX, SIDECAR_STAT_PREFIX, TranslationError, read_manifests
from tests.localmesh.translate.support import (
    CALC,
    GATEWAY,
    GW,
    K8S,
    documents,
    hcm,
    ingress,
    manifests,
    routes,
    sidecar,
    virtual_hosts,
    with_istio,
)


def listener(bootstrap: dict) -> dict:
    (only,) = bootstrap["static_resources"]["listeners"]
    return only


def test_ingress_listens_on_the_given_port_with_admin_and_node():
    bootstrap = ingress(manifests())
    assert listener(bootstrap)["address"] == {"socket_address": {"address": "127.0.0.1", "port_value": 18080}}
    assert bootstrap["admin"] == {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 18090}}}
    assert bootstrap["node"] == {
        "id": "router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local",
        "cluster": "istio-ingressgateway.istio-system",
    }
    assert hcm(bootstrap)["stat_prefix"] == INGRESS_STAT_PREFIX
    assert hcm(bootstrap)["use_remote_address"] is True
    assert "http_protocol_options" not in hcm(bootstrap)


def test_sidecar_is_an_http_proxy_accepting_absolute_uris():
    bootstrap = sidecar(manifests())
    assert listener(bootstrap)["address"] == {"socket_address": {"address": "127.0.0.1", "port_value": 18081}}
    assert bootstrap["admin"]["address"]["socket_address"]["port_value"] == 18091
    assert bootstrap["node"] == {
        "id": "sidecar~127.0.0.1~gateway.meshcalc~meshcalc.svc.cluster.local",
        "cluster": "gateway.meshcalc",
    }
    assert hcm(bootstrap)["stat_prefix"] == SIDECAR_STAT_PREFIX
    assert hcm(bootstrap)["use_remote_address"] is False
    assert hcm(bootstrap)["http_protocol_options"] == {"allow_absolute_url": True}


@pytest.mark.parametrize("build", [ingress, sidecar])
def test_filter_chain_is_fault_cors_router(build):
    assert [f["name"] for f in hcm(build(manifests()))["http_filters"]] == [
        "envoy.filters.http.fault",
        "envoy.filters.http.cors",
        "envoy.filters.http.router",
    ]


@pytest.mark.parametrize("build", [ingress, sidecar])
def test_access_log_is_json_with_the_evidence_fields(build):
    (log,) = hcm(build(manifests(), access_log_path="/tmp/access.log"))["access_log"]
    config = log["typed_config"]
    assert config["path"] == "/tmp/access.log"
    fields = config["log_format"]["json_format"]
    for command in (
        "%RESPONSE_CODE%",
        "%RESPONSE_FLAGS%",
        "%UPSTREAM_CLUSTER%",
        "%UPSTREAM_HOST%",
        "%DURATION%",
        "%REQ(X-REQUEST-ID)%",
    ):
        assert command in fields.values()


def test_access_log_defaults_to_stdout():
    (log,) = hcm(sidecar(manifests()))["access_log"]
    assert log["typed_config"]["path"] == "/dev/stdout"


def test_every_virtual_host_sends_the_attempt_count_upstream():
    for bootstrap in (ingress(manifests()), sidecar(manifests())):
        assert all(vhost["include_request_attempt_count"] for vhost in virtual_hosts(bootstrap).values())


def test_sidecar_domains_are_the_names_a_client_of_the_namespace_may_use():
    assert virtual_hosts(sidecar(manifests()))[f"{CALC}:80"]["domains"] == [
        CALC,
        f"{CALC}:80",
        "calculator.meshcalc.svc",
        "calculator.meshcalc.svc:80",
        "calculator.meshcalc",
        "calculator.meshcalc:80",
        "calculator",
        "calculator:80",
    ]


def test_sidecar_domains_of_another_namespace_and_another_port():
    other = """
apiVersion: v1
kind: Service
metadata: {name: audit, namespace: tools}
spec:
  selector: {app: audit}
  ports: [{name: http-api, port: 8080, targetPort: 9000}]
"""
    mesh = manifests(base={**with_istio(), "k8s/audit.yaml": other})
    # No short name from another namespace; no port-less name for a port other than 80.
    assert virtual_hosts(sidecar(mesh))["audit.tools.svc.cluster.local:8080"]["domains"] == [
        "audit.tools.svc.cluster.local:8080",
        "audit.tools.svc:8080",
        "audit.tools:8080",
    ]


def test_ingress_virtual_host_for_the_wildcard_server():
    vhost = virtual_hosts(ingress(manifests()))["*:80"]
    assert vhost["domains"] == ["*"]
    assert vhost["routes"][0]["route"]["cluster"] == f"outbound|80||{GW}"
    # The default retry policy and timeout apply at the gateway too.
    assert vhost["routes"][0]["route"]["timeout"] == "0s"
    assert vhost["routes"][0]["route"]["retry_policy"]["num_retries"] == 2


GATEWAY_FOR = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: meshcalc-gateway, namespace: meshcalc}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: {hosts}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: gateway, namespace: meshcalc}}
spec:
  hosts: {vs_hosts}
  gateways: [meshcalc-gateway]
  http:
  - route:
    - destination: {{host: gateway}}
"""


def ingress_domains(hosts: str, vs_hosts: str) -> dict[str, list[str]]:
    files = {"k8s/topology.yaml": K8S, "istio/gateway.yaml": GATEWAY_FOR.format(hosts=hosts, vs_hosts=vs_hosts)}
    return {name: vhost["domains"] for name, vhost in virtual_hosts(ingress(manifests(base=files))).items()}


def test_ingress_hosts_are_the_intersection_of_server_and_virtual_service_hosts():
    assert ingress_domains('["calc.example.com"]', '["*"]') == {
        "calc.example.com:80": ["calc.example.com", "calc.example.com:*"]
    }
    assert ingress_domains('["*"]', '["calc.example.com"]') == {
        "calc.example.com:80": ["calc.example.com", "calc.example.com:*"]
    }
    assert ingress_domains('["*.example.com"]', '["*"]') == {"*.example.com:80": ["*.example.com", "*.example.com:80"]}
    assert ingress_domains('["meshcalc/*"]', '["*"]') == {"*:80": ["*"]}


def test_ingress_without_intersection_has_no_virtual_host_so_envoy_answers_404():
    assert ingress_domains('["calc.example.com"]', '["other.example.com"]') == {}
    assert ingress_domains('["othernamespace/*"]', '["*"]') == {}


def test_virtual_service_exported_only_to_its_namespace_is_not_seen_by_the_ingress():
    files = {"k8s/topology.yaml": K8S, "istio/gateway.yaml": GATEWAY + "  exportTo: ['.']\n"}
    assert virtual_hosts(ingress(manifests(base=files))) == {}


def test_gateway_servers_on_two_ports_are_refused_since_the_ingress_has_one():
    two_ports = GATEWAY.replace(
        '    hosts: ["*"]\n',
        '    hosts: ["*"]\n  - port: {number: 8080, name: http-alt, protocol: HTTP}\n    hosts: ["*"]\n',
        1,
    )
    mesh = read_manifests(documents({"k8s/topology.yaml": K8S, "istio/gateway.yaml": two_ports}))
    with pytest.raises(
        TranslationError,
        match=r"istio/gateway.yaml: Gateway meshcalc/meshcalc-gateway: spec.servers\[1\].port.number: 8080",
    ):
        ingress(mesh)


def test_ingress_needs_a_gateway():
    with pytest.raises(TranslationError, match="no Gateway"):
        ingress(read_manifests(documents({"k8s/topology.yaml": K8S})))


def test_sidecar_of_an_unknown_workload_is_an_error():
    from localmesh.translate import local_endpoints, sidecar_bootstrap

    mesh = manifests()
    with pytest.raises(TranslationError, match="no Deployment meshcalc/nope"):
        sidecar_bootstrap(mesh, local_endpoints(mesh, {}), workload="meshcalc/nope", listen_port=1, admin_port=2)


def test_both_proxies_route_the_calculator_the_same_when_bound_to_both():
    mesh = manifests()
    assert routes(sidecar(mesh))[1]["route"]["weighted_clusters"]["clusters"][0]["weight"] == 90


def test_one_sidecar_per_replica_is_named_after_its_pod():
    bootstrap = sidecar(manifests(), pod="gateway-1")
    assert bootstrap["node"] == {
        "id": "sidecar~127.0.0.1~gateway-1.meshcalc~meshcalc.svc.cluster.local",
        "cluster": "gateway.meshcalc",
    }
    (log,) = hcm(bootstrap)["access_log"]
    assert log["typed_config"]["log_format"]["json_format"]["proxy"] == "sidecar~gateway-1.meshcalc"
