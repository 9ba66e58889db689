"""kind's port mapping reaches Istio's NodePort ingress; traces go to the addons' Jaeger."""

from __future__ import annotations

from manifestcheck.install import check_kind_ingress, check_kind_node_image, check_tracing
from tests.manifestcheck.conftest import env_of

OPERATOR = "istio/install/istio-kind.yaml"


def ingress_port(document):
    return next(
        p
        for p in document["spec"]["components"]["ingressGateways"][0]["k8s"]["service"]["ports"]
        if p["port"] == 80
    )


def kind_findings(repo_copy):
    repository = repo_copy.load()
    return check_kind_ingress(repository.kind_cluster, repository.install, list(repository.mesh))


def tracing_findings(repo_copy):
    repository = repo_copy.load()
    return check_tracing(repository.install, list(repository.mesh))


def test_the_host_port_maps_to_the_ingress_node_port(repo_copy):
    repo_copy.edit(OPERATOR, lambda d: ingress_port(d).update(nodePort=30081))
    (finding,) = kind_findings(repo_copy)
    assert (finding.check, finding.file, finding.field) == (
        "kind-ingress",
        "k8s/kind/cluster.yaml",
        "nodes.extraPortMappings",
    )
    assert "containerPort 30081" in finding.message


def test_the_ingress_is_a_node_port(repo_copy):
    repo_copy.edit(
        OPERATOR,
        lambda d: d["spec"]["components"]["ingressGateways"][0]["k8s"]["service"].update(type="LoadBalancer"),
    )
    (finding,) = kind_findings(repo_copy)
    assert finding.field == "spec.components.ingressGateways[0].k8s.service.type"
    assert "<pending>" in finding.message


def test_a_node_port_is_in_range(repo_copy):
    repo_copy.edit(OPERATOR, lambda d: ingress_port(d).update(nodePort=8080))
    (finding,) = kind_findings(repo_copy)
    assert finding.field.endswith(".nodePort")


def test_the_gateway_server_port_is_an_ingress_port(repo_copy):
    repo_copy.edit("istio/gateway.yaml", lambda d: d["spec"]["servers"][0]["port"].update(number=8080))
    (finding,) = kind_findings(repo_copy)
    assert (finding.file, finding.field) == ("istio/gateway.yaml", "spec.servers[0].port.number")


def test_the_host_port_is_the_documented_one(repo_copy):
    repo_copy.edit(
        "k8s/kind/cluster.yaml", lambda d: d["nodes"][0]["extraPortMappings"][0].update(hostPort=80)
    )
    (finding,) = kind_findings(repo_copy)
    assert "hostPort 8080" in finding.message


def test_telemetry_names_a_provider_of_the_mesh_config(repo_copy):
    repo_copy.edit(
        "istio/install/telemetry.yaml",
        lambda d: d["spec"]["tracing"][0]["providers"][0].update(name="zipkin"),
    )
    (finding,) = tracing_findings(repo_copy)
    assert (finding.check, finding.field) == ("tracing", "spec.tracing[0].providers[0].name")


def test_every_request_is_traced(repo_copy):
    repo_copy.edit(
        "istio/install/telemetry.yaml", lambda d: d["spec"]["tracing"][0].update(randomSamplingPercentage=1.0)
    )
    (finding,) = tracing_findings(repo_copy)
    assert finding.field == "spec.tracing[0].randomSamplingPercentage"


def test_apps_and_proxies_export_to_the_same_collector(repo_copy):
    repo_copy.edit(
        "k8s/base/gateway-deployment.yaml",
        lambda d: env_of(d, "OTEL_EXPORTER_OTLP_ENDPOINT").update(
            value="http://otel-collector.observability:4318"
        ),
    )
    (finding,) = tracing_findings(repo_copy)
    assert (finding.file, finding.field) == (
        "k8s/base/gateway-deployment.yaml",
        "spec.template.spec.containers[0].env.OTEL_EXPORTER_OTLP_ENDPOINT",
    )


def test_a_disabled_ingress_gateway_is_reported(repo_copy):
    repo_copy.edit(OPERATOR, lambda d: d["spec"]["components"]["ingressGateways"][0].update(enabled=False))
    (finding,) = kind_findings(repo_copy)
    assert finding.field == "spec.components.ingressGateways"


def test_an_ingress_gateway_is_enabled_unless_said_otherwise(repo_copy):
    repo_copy.edit(OPERATOR, lambda d: d["spec"]["components"]["ingressGateways"][0].pop("enabled"))
    assert kind_findings(repo_copy) == []


KIND = "k8s/kind/cluster.yaml"


def node_findings(repo_copy):
    repository = repo_copy.load()
    return check_kind_node_image(repository.kind_cluster, repository.install)


def test_the_kind_node_runs_a_kubernetes_istio_supports(repo_copy):
    assert node_findings(repo_copy) == []
    newest = "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"
    repo_copy.edit(KIND, lambda d: d["nodes"][0].update(image=newest))
    (finding,) = node_findings(repo_copy)
    assert (finding.check, finding.field) == ("kind-node", "nodes[0].image")
    assert "Istio 1.30 supports 1.32 to 1.36" in finding.message


def test_the_kind_node_image_is_pinned_by_digest(repo_copy):
    repo_copy.edit(KIND, lambda d: d["nodes"][0].update(image="kindest/node:v1.36.4"))
    (finding,) = node_findings(repo_copy)
    assert "by digest" in finding.message


def test_an_istio_release_of_unknown_support_is_said(repo_copy):
    repo_copy.edit(OPERATOR, lambda d: d["spec"].update(tag="1.99.0"))
    (finding,) = node_findings(repo_copy)
    assert "Istio '1.99.0'" in finding.message
