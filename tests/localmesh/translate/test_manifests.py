"""Reading the manifests: resources with their files, overlays, kinds, cluster-only resources, references."""

from __future__ import annotations

import re

import pytest

from localmesh.translate import Resource, TranslationError, overlay, read_manifests, resources_from_documents
from tests.localmesh.translate.support import BASE, CALCULATOR_DR, documents, manifests, with_istio


def test_empty_documents_are_skipped_and_namespace_defaults():
    (resource,) = resources_from_documents(
        [("a.yaml", None), ("a.yaml", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}})]
    )
    assert (resource.source, resource.namespace, resource.name, resource.spec) == ("a.yaml", "default", "x", {})


def test_a_document_without_kind_names_its_file():
    with pytest.raises(TranslationError, match=re.escape("b.yaml: a manifest needs kind")):
        Resource.from_document({"apiVersion": "v1", "metadata": {"name": "x"}}, "b.yaml")


def test_cluster_only_resources_are_listed_not_translated():
    mesh = manifests()
    assert sorted((r.kind, r.name) for r in mesh.cluster_only) == [
        ("AuthorizationPolicy", "calculator"),
        ("Namespace", "meshcalc"),
        ("PeerAuthentication", "default"),
    ]
    assert {r.kind for r in mesh.enforced} == {"Deployment", "Service", "Gateway", "VirtualService", "DestinationRule"}


def test_unknown_kinds_are_refused_with_their_file():
    entry = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: meshcalc}
spec: {hosts: [example.com]}
"""
    with pytest.raises(
        TranslationError,
        match=re.escape(
            "istio/test-0.yaml: ServiceEntry meshcalc/external: kind ServiceEntry of networking.istio.io/v1 "
            "is not supported"
        ),
    ):
        manifests(base=with_istio(entry))


def test_the_same_resource_twice_is_an_error_naming_both_files():
    files = {**BASE, "istio/again.yaml": CALCULATOR_DR}
    with pytest.raises(
        TranslationError,
        match=re.escape(
            "istio/again.yaml: DestinationRule meshcalc/calculator: "
            "also defined in istio/calculator-destinationrule.yaml"
        ),
    ):
        read_manifests(documents(files))


def test_overlay_replaces_by_kind_namespace_and_name():
    scenario = documents({"istio/scenarios/x.yaml": CALCULATOR_DR.replace("maxConnections: 100", "maxConnections: 1")})
    merged = overlay(documents(BASE), scenario)
    (rule,) = [r for r in merged if r.kind == "DestinationRule"]
    assert rule.source == "istio/scenarios/x.yaml"
    assert len(merged) == len(documents(BASE))


def test_destination_to_an_unknown_service_is_an_error():
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: calculator, namespace: meshcalc}
spec:
  hosts: [calculator]
  http: [{route: [{destination: {host: calculadora}}]}]
"""
    with pytest.raises(
        TranslationError,
        match=re.escape(
            "istio/test-0.yaml: VirtualService meshcalc/calculator: spec.http[0].route[0].destination.host: "
            "no Service calculadora.meshcalc.svc.cluster.local"
        ),
    ):
        manifests(base=with_istio(vs))


def test_unknown_subset_and_port_are_errors():
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: calculator, namespace: meshcalc}
spec:
  hosts: [calculator]
  http: [{route: [{destination: {host: calculator, subset: v3}}]}]
"""
    with pytest.raises(
        TranslationError, match=r"spec.http\[0\].route\[0\].destination.subset: no DestinationRule defines subset 'v3'"
    ):
        manifests(base=with_istio(vs, CALCULATOR_DR))
    with pytest.raises(
        TranslationError,
        match=r"destination.port.number: Service calculator.meshcalc.svc.cluster.local has no port 8080",
    ):
        manifests(base=with_istio(vs.replace("subset: v3", "port: {number: 8080}")))


def test_unknown_gateway_is_an_error():
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: calculator, namespace: meshcalc}
spec:
  hosts: [calculator]
  gateways: [nope]
  http: [{route: [{destination: {host: calculator}}]}]
"""
    with pytest.raises(TranslationError, match=r"spec.gateways\[0\]: no Gateway meshcalc/nope"):
        manifests(base=with_istio(vs))


def test_destination_rule_for_an_unknown_host_is_an_error():
    with pytest.raises(
        TranslationError, match=re.escape("spec.host: no Service calculadora.meshcalc.svc.cluster.local")
    ):
        manifests(base=with_istio(CALCULATOR_DR.replace("host: calculator", "host: calculadora")))


def test_invalid_values_name_the_field():
    with pytest.raises(
        TranslationError, match=r"spec.trafficPolicy.connectionPool.tcp.maxConnections: must be an integer, not 'many'"
    ):
        manifests(base=with_istio(CALCULATOR_DR.replace("maxConnections: 100", "maxConnections: many")))
    with pytest.raises(TranslationError, match=r"spec.trafficPolicy.outlierDetection.interval: must be a duration"):
        manifests(base=with_istio(CALCULATOR_DR.replace("interval: 1s", "interval: soon")))
