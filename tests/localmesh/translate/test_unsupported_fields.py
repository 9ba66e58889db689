"""Every field the local mesh does not implement is an error naming the file, the resource and the field."""

from __future__ import annotations

import re

import pytest
import yaml

from localmesh.translate import TranslationError
from tests.localmesh.translate.support import CALCULATOR_DR, GATEWAY, K8S, manifests

UNSUPPORTED = "is not supported by the local mesh (it runs only on a cluster)"


def virtual_service(spec_yaml: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: calculator, namespace: meshcalc}}
spec:
{spec_yaml}
"""


def destination_rule(spec_yaml: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: calculator, namespace: meshcalc}}
spec:
  host: calculator
{spec_yaml}
"""


def route(extra: str) -> str:
    return virtual_service(f"""
  hosts: [calculator]
  http:
  - route: [{{destination: {{host: calculator}}}}]
{extra}""")


VIRTUAL_SERVICE_CASES = [
    (route("    corsPolicy: {allowOrigins: [{exact: x}], unknownField: 1}"), "spec.http[0].corsPolicy.unknownField"),
    (route("    redirect: {uri: /elsewhere}"), "spec.http[0].redirect"),
    (route("    directResponse: {status: 200}"), "spec.http[0].directResponse"),
    (route("    delegate: {name: other}"), "spec.http[0].delegate"),
    (route("    mirror: {host: calculator}\n    mirrorPercent: 50"), "spec.http[0].mirrorPercent"),
    (route("    match: [{sourceLabels: {app: gateway}}]"), "spec.http[0].match[0].sourceLabels"),
    (route("    match: [{sourceNamespace: meshcalc}]"), "spec.http[0].match[0].sourceNamespace"),
    (
        route("    match: [{headers: {'@request.auth.claims.group': {exact: a}}}]"),
        "spec.http[0].match[0].headers.@request.auth.claims.group",
    ),
    (
        route("    retries: {attempts: 2, retryRemoteLocalities: true}"),
        "spec.http[0].retries.retryRemoteLocalities: True",
    ),
    (
        route("    fault: {delay: {exponentialDelay: 1s, percentage: {value: 5}}}"),
        "spec.http[0].fault.delay.exponentialDelay",
    ),
    (route("    fault: {abort: {grpcStatus: UNAVAILABLE}}"), "spec.http[0].fault.abort.grpcStatus"),
    (route("    fault: {abort: {http2Error: REFUSED_STREAM}}"), "spec.http[0].fault.abort.http2Error"),
    (
        route("    mirrors: [{destination: {host: calculator}, percentage: {value: 1}, extra: true}]"),
        "spec.http[0].mirrors[0].extra",
    ),
    (virtual_service("  hosts: [calculator]\n  tcp: [{route: [{destination: {host: calculator}}]}]"), "spec.tcp"),
    (
        virtual_service(
            "  hosts: [calculator]\n"
            "  tls: [{match: [{sniHosts: [calculator]}], route: [{destination: {host: calculator}}]}]"
        ),
        "spec.tls",
    ),
    (
        virtual_service(
            "  hosts: [calculator]\n  exportTo: [other]\n  http: [{route: [{destination: {host: calculator}}]}]"
        ),
        "spec.exportTo[0]: 'other'",
    ),
    (
        virtual_service("  hosts: [example.com]\n  http: [{route: [{destination: {host: calculator}}]}]"),
        "spec.hosts[0]: 'example.com' (not a Service of the manifests)",
    ),
]

DESTINATION_RULE_CASES = [
    ("  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}", "spec.trafficPolicy.tls.mode: 'ISTIO_MUTUAL'"),
    (
        "  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}",
        "spec.trafficPolicy.loadBalancer.consistentHash",
    ),
    (
        "  trafficPolicy: {loadBalancer: {localityLbSetting: {enabled: true}}}",
        "spec.trafficPolicy.loadBalancer.localityLbSetting",
    ),
    ("  trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}", "spec.trafficPolicy.loadBalancer.simple: 'PASSTHROUGH'"),
    (
        "  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 10s}}",
        "spec.trafficPolicy.loadBalancer.warmupDurationSecs",
    ),
    ("  trafficPolicy: {portLevelSettings: [{port: {number: 80}}]}", "spec.trafficPolicy.portLevelSettings"),
    (
        "  trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}",
        "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: 'UPGRADE'",
    ),
    (
        "  trafficPolicy: {connectionPool: {http: {useClientProtocol: true}}}",
        "spec.trafficPolicy.connectionPool.http.useClientProtocol",
    ),
    (
        "  trafficPolicy: {connectionPool: {http: {maxConcurrentStreams: 10}}}",
        "spec.trafficPolicy.connectionPool.http.maxConcurrentStreams",
    ),
    (
        "  trafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {time: 10s}}}}",
        "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive",
    ),
    (
        "  trafficPolicy: {outlierDetection: {consecutiveErrors: 5}}",
        "spec.trafficPolicy.outlierDetection.consecutiveErrors",
    ),
    ("  trafficPolicy: {tunnel: {protocol: CONNECT}}", "spec.trafficPolicy.tunnel"),
    ("  trafficPolicy: {proxyProtocol: {version: V1}}", "spec.trafficPolicy.proxyProtocol"),
    ("  workloadSelector: {matchLabels: {app: gateway}}", "spec.workloadSelector"),
    ("  exportTo: [istio-system]", "spec.exportTo[0]: 'istio-system'"),
    (
        "  subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {tls: {mode: SIMPLE}}}]",
        "spec.subsets[0].trafficPolicy.tls.mode: 'SIMPLE'",
    ),
]

GATEWAY_CASES = [
    ('    hosts: ["*"]\n    tls: {httpsRedirect: true}', "spec.servers[0].tls"),
    ('    hosts: ["*"]\n    bind: 0.0.0.0', "spec.servers[0].bind"),
    ('    hosts: ["*"]\n    defaultEndpoint: 127.0.0.1:8080', "spec.servers[0].defaultEndpoint"),
]


def refused(files: dict[str, str], message: str) -> None:
    with pytest.raises(TranslationError) as error:
        manifests(base={"k8s/topology.yaml": K8S, "istio/gateway.yaml": GATEWAY, **files})
    assert message in str(error.value)


@pytest.mark.parametrize(("text", "field"), VIRTUAL_SERVICE_CASES, ids=[field for _, field in VIRTUAL_SERVICE_CASES])
def test_virtual_service_fields(text, field):
    refused(
        {"istio/calculator-virtualservice.yaml": text},
        f"istio/calculator-virtualservice.yaml: VirtualService meshcalc/calculator: {field} {UNSUPPORTED}",
    )


@pytest.mark.parametrize(("spec", "field"), DESTINATION_RULE_CASES, ids=[field for _, field in DESTINATION_RULE_CASES])
def test_destination_rule_fields(spec, field):
    refused(
        {"istio/calculator-destinationrule.yaml": destination_rule(spec)},
        f"istio/calculator-destinationrule.yaml: DestinationRule meshcalc/calculator: {field} {UNSUPPORTED}",
    )


@pytest.mark.parametrize(("server", "field"), GATEWAY_CASES, ids=[field for _, field in GATEWAY_CASES])
def test_gateway_fields(server, field):
    gateway = GATEWAY.replace('    hosts: ["*"]', server, 1)
    with pytest.raises(TranslationError) as error:
        manifests(base={"k8s/topology.yaml": K8S, "istio/gateway.yaml": gateway})
    assert f"istio/gateway.yaml: Gateway meshcalc/meshcalc-gateway: {field} {UNSUPPORTED}" in str(error.value)


def test_gateway_protocol_and_selector():
    for old, new, field in (
        ("protocol: HTTP", "protocol: HTTPS", "spec.servers[0].port.protocol: 'HTTPS'"),
        (
            "selector: {istio: ingressgateway}",
            "selector: {istio: egressgateway}",
            "spec.selector: {'istio': 'egressgateway'}",
        ),
    ):
        with pytest.raises(
            TranslationError, match=re.escape(f"Gateway meshcalc/meshcalc-gateway: {field} {UNSUPPORTED}")
        ):
            manifests(base={"k8s/topology.yaml": K8S, "istio/gateway.yaml": GATEWAY.replace(old, new, 1)})


def test_service_ports_other_than_http1_are_refused():
    grpc = K8S.replace(
        "ports: [{name: http, port: 80, targetPort: http}]", "ports: [{name: grpc-api, port: 80, targetPort: http}]"
    )
    with pytest.raises(
        TranslationError,
        match=re.escape(
            "k8s/topology.yaml: Service meshcalc/calculator: spec.ports[0].name: "
            "'grpc-api' names a protocol other than HTTP/1.1"
        ),
    ):
        manifests(base={"k8s/topology.yaml": grpc})
    external = K8S.replace("  selector: {app: calculator}\n", "  type: ExternalName\n  selector: {app: calculator}\n")
    with pytest.raises(
        TranslationError, match=re.escape(f"Service meshcalc/calculator: spec.type: 'ExternalName' {UNSUPPORTED}")
    ):
        manifests(base={"k8s/topology.yaml": external})


def test_every_documented_field_of_the_demo_is_accepted():
    # The realistic DR of the demo reads without error: the strict reader does not refuse supported fields.
    assert manifests(base={"k8s/topology.yaml": K8S, "istio/dr.yaml": CALCULATOR_DR}).destination_rules
    assert yaml.safe_load(CALCULATOR_DR)["spec"]["subsets"]
