"""Local endpoints: each Service port's pods, one local port per Deployment replica, with the pod labels."""

from __future__ import annotations

import pytest

from localmesh.translate import (
    LocalEndpoint,
    TranslationError,
    deployment_replicas,
    local_endpoints,
    read_manifests,
    with_pod_ports,
)
from tests.localmesh.translate.support import BASE, CALC, GW, K8S, LOCAL_PORTS, documents, manifests


def test_replicas_come_from_the_deployments():
    assert deployment_replicas(manifests()) == {
        "meshcalc/calculator-v1": 2,
        "meshcalc/calculator-v2": 1,
        "meshcalc/gateway": 2,
    }


def test_an_autoscaled_deployment_has_its_autoscalers_min_replicas():
    """The manifests leave spec.replicas to the HorizontalPodAutoscaler: the model reads its minReplicas."""
    autoscaled = K8S.replace("  replicas: 2\n", "", 1) + """
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: calculator-v1, namespace: meshcalc}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: calculator-v1}
  minReplicas: 3
  maxReplicas: 4
"""
    base = {name: text for name, text in BASE.items() if text != K8S}
    found = deployment_replicas(read_manifests(documents({**base, "k8s/topology.yaml": autoscaled})))
    assert found == {"meshcalc/calculator-v1": 3, "meshcalc/calculator-v2": 1, "meshcalc/gateway": 2}


def test_service_endpoints_are_the_replicas_its_selector_matches():
    endpoints = local_endpoints(manifests(), LOCAL_PORTS)
    v1 = {"app": "calculator", "version": "v1"}
    assert endpoints[(CALC, 80)] == (
        LocalEndpoint("127.0.0.1", 18001, v1, "calculator-v1-0"),
        LocalEndpoint("127.0.0.1", 18002, v1, "calculator-v1-1"),
        LocalEndpoint("127.0.0.1", 18003, {"app": "calculator", "version": "v2"}, "calculator-v2-0"),
    )
    assert [e.port for e in endpoints[(GW, 80)]] == [18011, 18012]


def test_a_deployment_needs_one_local_port_per_replica():
    with pytest.raises(TranslationError, match="Deployment meshcalc/calculator-v1: has 2 replicas, but 1 local ports"):
        local_endpoints(manifests(), {**LOCAL_PORTS, "meshcalc/calculator-v1": [1]})
    with pytest.raises(TranslationError, match="no Deployment of the manifests"):
        local_endpoints(manifests(), {"meshcalc/nope": [1]})


def test_selector_matches_only_its_namespace_and_named_target_ports_must_exist():
    other = """
apiVersion: v1
kind: Service
metadata: {name: calculator, namespace: elsewhere}
spec:
  selector: {app: calculator}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: named, namespace: meshcalc}
spec:
  selector: {app: calculator}
  ports: [{name: http, port: 80, targetPort: metrics}]
"""
    endpoints = local_endpoints(
        read_manifests(documents({"k8s/topology.yaml": K8S, "k8s/other.yaml": other})), LOCAL_PORTS
    )
    assert endpoints[("calculator.elsewhere.svc.cluster.local", 80)] == ()
    assert endpoints[("named.meshcalc.svc.cluster.local", 80)] == ()


def test_two_services_targeting_two_container_ports_of_one_replica_are_refused():
    other = """
apiVersion: v1
kind: Service
metadata: {name: metrics, namespace: meshcalc}
spec:
  selector: {app: gateway}
  ports: [{name: http-metrics, port: 9090, targetPort: 9090}]
"""
    mesh = read_manifests(documents({"k8s/topology.yaml": K8S, "k8s/other.yaml": other}))
    with pytest.raises(
        TranslationError, match=r"Deployment meshcalc/gateway: Services target container ports \[8000, 9090\]"
    ):
        local_endpoints(mesh, LOCAL_PORTS)


def test_a_pod_withdrawn_or_surged_for_a_rolling_restart():
    endpoints = local_endpoints(manifests(), LOCAL_PORTS)
    withdrawn = with_pod_ports(endpoints, {"calculator-v1-0": []})
    assert [e.pod for e in withdrawn[(CALC, 80)]] == ["calculator-v1-1", "calculator-v2-0"]
    surged = with_pod_ports(endpoints, {"calculator-v2-0": [18003, 19003], "gateway-1": [19012]})
    v2 = [e for e in surged[(CALC, 80)] if e.pod == "calculator-v2-0"]
    assert [e.port for e in v2] == [18003, 19003]
    assert all(e.labels == {"app": "calculator", "version": "v2"} for e in v2)  # still in subset v2
    assert [e.port for e in surged[(GW, 80)]] == [18011, 19012]
    assert with_pod_ports(endpoints, {}) == dict(endpoints)
