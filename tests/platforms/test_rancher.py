"""k8s/overlays/rancher/istio-rancher.yaml: parses, matches the kind install, and gives the ingress its ports."""

from __future__ import annotations

import copy

import pytest

from tests.platforms import rancher_checks as checks


@pytest.fixture(scope="module")
def rancher():
    return checks.load(checks.RANCHER_ISTIO)


@pytest.fixture(scope="module")
def servers():
    return checks.load(checks.GATEWAY)["spec"]["servers"]


def test_it_is_an_istio_operator(rancher):
    assert rancher["apiVersion"] == "install.istio.io/v1alpha1"
    assert rancher["kind"] == "IstioOperator"


def test_it_is_the_kind_install_but_for_the_ingress_service(rancher):
    assert checks.differences_from_kind(rancher, checks.load(checks.KIND_ISTIO)) == []


def test_the_ingress_gets_the_gateway_port_and_localhost_8080(rancher, servers):
    assert checks.ingress_problems(rancher, servers) == []


def _service(operator):
    return checks.ingress_gateway(operator)["k8s"]["service"]


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda o: _service(o).update(type="NodePort"), "Service type NodePort"),
        (lambda o: _service(o)["ports"].pop(1), "no Service port 80"),
        (lambda o: _service(o)["ports"].pop(2), "no Service port 8080"),
        (lambda o: _service(o)["ports"][2].update(targetPort=80), "port 8080 targets 80"),
        (lambda o: _service(o)["ports"][1].update(nodePort=30080), "fixed nodePort"),
        (lambda o: checks.ingress_gateway(o).update(enabled=False), "not enabled"),
    ],
)
def test_ingress_check_catches(rancher, servers, break_it, expected):
    broken = copy.deepcopy(rancher)
    break_it(broken)
    assert any(expected in p for p in checks.ingress_problems(broken, servers))


def test_a_drift_from_the_kind_install_is_caught(rancher):
    broken = copy.deepcopy(rancher)
    broken["spec"]["meshConfig"]["accessLogFile"] = ""
    assert checks.differences_from_kind(broken, checks.load(checks.KIND_ISTIO))
