"""Each reference check fails on a copy of the manifests broken the way it guards against."""

from __future__ import annotations

import pytest

from manifestcheck import references
from manifestcheck.install import ingress_labels
from tests.manifestcheck.conftest import container, of_check

VS = "istio/calculator-virtualservice.yaml"
DR = "istio/calculator-destinationrule.yaml"


def run(repo_copy, check):
    repository = repo_copy.load()
    return check(list(repository.mesh))


def test_a_destination_host_must_be_a_service(repo_copy):
    repo_copy.edit(VS, lambda d: d["spec"]["http"][1]["route"][0]["destination"].update(host="calculater"))
    (finding,) = run(repo_copy, references.check_destination_hosts)
    assert (finding.check, finding.file, finding.resource) == (
        "destination-host",
        VS,
        "VirtualService meshcalc/calculator",
    )
    assert finding.field == "spec.http[1].route[0].destination.host"
    assert "calculater.meshcalc.svc.cluster.local" in finding.message


def test_a_destination_port_must_be_a_port_of_the_service(repo_copy):
    repo_copy.edit(
        "istio/gateway-virtualservice.yaml",
        lambda d: d["spec"]["http"][0]["route"][0]["destination"]["port"].update(number=8080),
    )
    (finding,) = run(repo_copy, references.check_destination_hosts)
    assert finding.field == "spec.http[0].route[0].destination.port.number"


def test_a_mirror_host_is_checked_too(repo_copy):
    repo_copy.edit(
        "istio/scenarios/virtual-service-calculator-mirror-v2.yaml", lambda d: d["spec"]["http"][1]["mirror"].update(host="shadow")
    )
    repository = repo_copy.load()
    merged = [
        m
        if m.key != repository.scenarios["virtual-service-calculator-mirror-v2"][0].key
        else repository.scenarios["virtual-service-calculator-mirror-v2"][0]
        for m in repository.mesh
    ]
    (finding,) = references.check_destination_hosts(merged)
    assert finding.field == "spec.http[1].mirror.host"


def test_a_destination_rule_host_must_be_a_service(repo_copy):
    repo_copy.edit(DR, lambda d: d["spec"].update(host="calculator.other"))
    (finding,) = run(repo_copy, references.check_destination_hosts)
    assert (finding.file, finding.field) == (DR, "spec.host")


def test_a_routed_subset_must_be_defined(repo_copy):
    repo_copy.edit(VS, lambda d: d["spec"]["http"][1]["route"][1]["destination"].update(subset="v3"))
    (finding,) = run(repo_copy, references.check_subsets)
    assert (finding.check, finding.field) == ("subset", "spec.http[1].route[1].destination.subset")


def test_a_subset_must_select_pods(repo_copy):
    repo_copy.edit(DR, lambda d: d["spec"]["subsets"][1]["labels"].update(version="2"))
    (finding,) = run(repo_copy, references.check_subsets)
    assert (finding.file, finding.field) == (DR, "spec.subsets[1].labels")
    assert "selects no pod" in finding.message


@pytest.mark.parametrize("weights, message", [((90, 20), "add up to 110"), ((90, -10), "whole numbers")])
def test_split_weights_must_add_up_to_100(repo_copy, weights, message):
    def change(document):
        for entry, weight in zip(document["spec"]["http"][1]["route"], weights, strict=True):
            entry["weight"] = weight

    repo_copy.edit(VS, change)
    (finding,) = run(repo_copy, references.check_route_weights)
    assert (finding.check, finding.field) == ("route-weights", "spec.http[1].route")
    assert message in finding.message


def gateway_findings(repo_copy):
    repository = repo_copy.load()
    return references.check_gateway_bindings(list(repository.mesh), ingress_labels(repository.install))


def test_a_virtual_service_must_name_an_existing_gateway(repo_copy):
    repo_copy.edit("istio/gateway-virtualservice.yaml", lambda d: d["spec"].update(gateways=["meshcalc-gw"]))
    findings = gateway_findings(repo_copy)
    assert {(f.check, f.field) for f in findings} == {
        ("gateway-binding", "spec.gateways[0]"),
        ("gateway-binding", "metadata.name"),  # and the Gateway is now unused
    }


def test_a_bound_virtual_service_must_share_a_host_with_its_gateway(repo_copy):
    repo_copy.edit(
        "istio/gateway.yaml", lambda d: d["spec"]["servers"][0].update(hosts=["meshcalc.example.com"])
    )
    repo_copy.edit(
        "istio/gateway-virtualservice.yaml", lambda d: d["spec"].update(hosts=["other.example.com"])
    )
    (finding,) = gateway_findings(repo_copy)
    assert finding.field == "spec.hosts"
    assert "404" in finding.message


def test_a_gateway_must_select_the_ingress_gateway(repo_copy):
    repo_copy.edit("istio/gateway.yaml", lambda d: d["spec"].update(selector={"istio": "ingress"}))
    (finding,) = gateway_findings(repo_copy)
    assert (finding.file, finding.field) == ("istio/gateway.yaml", "spec.selector")


def test_the_ingress_labels_come_from_the_istio_operator(repo_copy):
    def relabel(document):
        document["spec"]["components"]["ingressGateways"][0]["label"] = {"istio": "edge"}

    repo_copy.edit("istio/install/istio-kind.yaml", relabel)
    (finding,) = gateway_findings(repo_copy)
    assert finding.field == "spec.selector"


@pytest.mark.parametrize(
    "file, change, field",
    [
        (
            "k8s/base/calculator-service.yaml",
            lambda d: d["spec"].update(selector={"app": "calculadora"}),
            "spec.selector",
        ),
        (
            "k8s/base/gateway-deployment.yaml",
            lambda d: d["spec"]["selector"]["matchLabels"].update(app="gw"),
            "spec.selector",
        ),
        (
            "k8s/base/calculator-v2-poddisruptionbudget.yaml",
            lambda d: d["spec"]["selector"]["matchLabels"].update(version="v3"),
            "spec.selector",
        ),
        (
            "k8s/base/gateway-horizontalpodautoscaler.yaml",
            lambda d: d["spec"]["scaleTargetRef"].update(name="gateway-v1"),
            "spec.scaleTargetRef",
        ),
        (
            "k8s/base/gateway-horizontalpodautoscaler.yaml",
            lambda d: d["spec"]["metrics"][0]["containerResource"].update(container="istio"),
            "spec.metrics[0].containerResource.container",
        ),
        (
            "istio/calculator-authorizationpolicy.yaml",
            lambda d: d["spec"]["selector"]["matchLabels"].update(app="calculadora"),
            "spec.selector.matchLabels",
        ),
    ],
    ids=["service", "deployment", "pdb", "hpa-target", "hpa-container", "authorization-policy"],
)
def test_every_selector_must_select_pods(repo_copy, file, change, field):
    repo_copy.edit(file, change)
    findings = run(repo_copy, references.check_selectors)
    assert [(f.check, f.file, f.field) for f in findings] == [("selector", file, field)]


def test_a_service_port_must_name_its_protocol(repo_copy):
    def rename(document):
        port = document["spec"]["ports"][0]
        port["name"] = "web"
        del port["appProtocol"]

    repo_copy.edit("k8s/base/calculator-service.yaml", rename)
    (finding,) = run(repo_copy, references.check_service_ports)
    assert (finding.check, finding.field) == ("service-port", "spec.ports[0].name")
    assert "opaque TCP" in finding.message


def test_app_protocol_is_enough(repo_copy):
    repo_copy.edit("k8s/base/calculator-service.yaml", lambda d: d["spec"]["ports"][0].update(name="web"))
    assert run(repo_copy, references.check_service_ports) == []


def test_a_target_port_must_be_declared_by_the_pods(repo_copy):
    repo_copy.edit("k8s/base/gateway-deployment.yaml", lambda d: container(d)["ports"][0].update(name="web"))
    (finding,) = run(repo_copy, references.check_service_ports)
    assert (finding.file, finding.field) == ("k8s/base/gateway-service.yaml", "spec.ports[0].targetPort")


def test_a_workload_must_not_run_as_the_default_service_account(repo_copy):
    repo_copy.edit(
        "k8s/base/gateway-deployment.yaml", lambda d: d["spec"]["template"]["spec"].pop("serviceAccountName")
    )
    (finding,) = run(repo_copy, references.check_service_accounts)
    assert (finding.check, finding.field) == ("service-account", "spec.template.spec.serviceAccountName")


def test_a_workload_service_account_must_exist(repo_copy):
    repo_copy.edit(
        "k8s/base/calculator-v2-deployment.yaml",
        lambda d: d["spec"]["template"]["spec"].update(serviceAccountName="calculator-v2"),
    )
    (finding,) = run(repo_copy, references.check_service_accounts)
    assert "no ServiceAccount calculator-v2" in finding.message


@pytest.mark.parametrize(
    "principal, message",
    [
        ("cluster.local/ns/meshcalc/sa/gateways", "no ServiceAccount meshcalc/gateways"),
        ("cluster.local/ns/meshcalc/sa/*", "not one workload's identity"),
        ("gateway", "not one workload's identity"),
    ],
)
def test_authorization_principals_must_name_real_service_accounts(repo_copy, principal, message):
    repo_copy.edit(
        "istio/calculator-authorizationpolicy.yaml",
        lambda d: d["spec"]["rules"][0]["from"][0]["source"].update(principals=[principal]),
    )
    (finding,) = run(repo_copy, references.check_authorization)
    assert (finding.check, finding.field) == ("authorization", "spec.rules[0].from[0].source.principals[0]")
    assert message in finding.message


def test_an_allow_rule_must_name_callers_and_operations(repo_copy):
    repo_copy.edit("istio/calculator-authorizationpolicy.yaml", lambda d: d["spec"].update(rules=[{}]))
    findings = run(repo_copy, references.check_authorization)
    assert {f.field for f in of_check(findings, "authorization")} == {
        "spec.rules[0].from",
        "spec.rules[0].to",
    }


INGRESS_POLICY = "istio/ingress/ingressgateway-authorizationpolicy.yaml"
INGRESS_FILTER = "istio/ingress/ingressgateway-envoyfilter.yaml"


def test_the_ingress_policy_admits_the_public_and_names_the_operations(repo_copy):
    assert run(repo_copy, references.check_authorization) == []
    repo_copy.edit(INGRESS_POLICY, lambda d: d["spec"].update(rules=[{}]))
    findings = run(repo_copy, references.check_authorization)
    # Its callers are the public (no principals to name), but what they may ask must be written.
    # Without it, the gateway's policy (callers: the ingress only) names no operation either.
    assert {(f.file, f.field) for f in findings} == {
        (INGRESS_POLICY, "spec.rules[0].to"),
        ("istio/gateway-authorizationpolicy.yaml", "spec.rules[0].to"),
    }


def test_a_policy_left_to_the_edge_must_have_only_the_ingress_as_caller(repo_copy):
    repo_copy.edit(
        "istio/gateway-authorizationpolicy.yaml",
        lambda d: d["spec"]["rules"][0]["from"][0]["source"].update(principals=["cluster.local/ns/meshcalc/sa/gateway"]),
    )
    (finding,) = run(repo_copy, references.check_authorization)
    assert (finding.file, finding.field) == ("istio/gateway-authorizationpolicy.yaml", "spec.rules[0].to")


@pytest.mark.parametrize(
    "file, change, field, message",
    [
        (INGRESS_POLICY, lambda d: d["spec"]["selector"].update(matchLabels={"istio": "edge"}),
         "spec.selector.matchLabels", "selects no pod"),
        (INGRESS_FILTER, lambda d: d["spec"]["workloadSelector"].update(labels={"istio": "edge"}),
         "spec.workloadSelector.labels", "selects no pod"),
        (INGRESS_FILTER, lambda d: d["spec"].pop("workloadSelector"),
         "spec.workloadSelector.labels", "applies to every proxy"),
    ],
    ids=["policy", "envoyfilter", "envoyfilter-everywhere"],
)
def test_the_ingress_policies_must_select_the_ingress_gateway(repo_copy, file, change, field, message):
    assert run(repo_copy, references.check_selectors) == []
    repo_copy.edit(file, change)
    (finding,) = run(repo_copy, references.check_selectors)
    assert (finding.file, finding.field) == (file, field)
    assert message in finding.message


def test_the_ingress_gateway_identity_is_known(repository):
    policy = next(m for m in repository.istio if m.kind == "AuthorizationPolicy" and m.name == "gateway")
    principal = policy.spec["rules"][0]["from"][0]["source"]["principals"][0]
    assert principal in references.EXTERNAL_PRINCIPALS


@pytest.mark.parametrize(
    "file, change, field",
    [
        (
            "k8s/base/calculator-v2-deployment.yaml",
            lambda d: d["spec"]["template"]["metadata"]["labels"].pop("version"),
            "spec.template.metadata.labels.version",
        ),
        ("k8s/base/namespace.yaml", lambda d: d["metadata"].pop("labels"), "metadata.namespace"),
        (
            "k8s/base/gateway-deployment.yaml",
            lambda d: d["spec"]["template"]["metadata"]["annotations"].update(
                {"sidecar.istio.io/inject": "false"}
            ),
            "spec.template.metadata",
        ),
    ],
    ids=["version-label", "injection", "opt-out"],
)
def test_pods_are_labelled_and_injected(repo_copy, file, change, field):
    repo_copy.edit(file, change)
    findings = of_check(run(repo_copy, references.check_mesh_labels), "mesh-labels")
    assert field in {f.field for f in findings}


@pytest.mark.parametrize(
    "first, second, expected",
    [
        ("*", "a.b", True),
        ("a.b", "a.b", True),
        ("*.example.com", "x.example.com", True),
        ("ns/a.b", "a.b", True),
        ("a.b", "c.d", False),
    ],
)
def test_hosts_intersect(first, second, expected):
    assert references.hosts_intersect(first, second) is expected
