"""Istio resources against Istio's schema with unknown fields rejected and no coercion."""

from __future__ import annotations

import pytest

from manifestcheck.istio_schema import check_istio_schema


def istio_findings(repo_copy):
    repository = repo_copy.load()
    documents = [
        *repository.istio,
        *repository.install,
        *(m for s in repository.scenarios.values() for m in s),
    ]
    return check_istio_schema(documents)


@pytest.mark.parametrize(
    "file, change, field",
    [
        (
            "istio/calculator-virtualservice.yaml",
            lambda d: d["spec"]["http"][1]["retries"].update(retryOnn="5xx"),
            "spec.http[1].retries.retryOnn",
        ),
        (
            "istio/calculator-destinationrule.yaml",
            lambda d: d["spec"]["trafficPolicy"]["outlierDetection"].update(max_ejection_percent=50),
            "spec.trafficPolicy.outlierDetection.max_ejection_percent",
        ),
        (
            "istio/calculator-destinationrule.yaml",
            lambda d: d["spec"]["trafficPolicy"]["outlierDetection"].update(maxEjectionPercent="50"),
            "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
        ),
        (
            "istio/peer-authentication.yaml",
            lambda d: d["spec"]["mtls"].update(mode="STRICTEST"),
            "spec.mtls.mode",
        ),
        ("istio/gateway.yaml", lambda d: d["metadata"].update(lables={"a": "b"}), "metadata.lables"),
        (
            "istio/install/telemetry.yaml",
            lambda d: d["spec"]["tracing"][0].update(sampling=100),
            "spec.tracing[0].sampling",
        ),
        (
            "istio/scenarios/virtual-service-calculator-fault-abort.yaml",
            lambda d: d["spec"]["http"][1]["fault"]["abort"].update(httpStatus="503"),
            "spec.http[1].fault.abort.httpStatus",
        ),
    ],
    ids=["misspelled", "snake-case", "quoted-number", "enum", "metadata", "install", "scenario"],
)
def test_a_broken_istio_resource_fails(repo_copy, file, change, field):
    repo_copy.edit(file, change)
    findings = istio_findings(repo_copy)
    assert [(f.check, f.file, f.field) for f in findings] == [("istio-schema", file, field)]


def test_an_unknown_istio_kind_fails(repo_copy):
    repo_copy.edit("istio/gateway.yaml", lambda d: d.update(kind="Gateways"))
    (finding,) = istio_findings(repo_copy)
    assert finding.field == "apiVersion"


def test_the_istio_operator_is_left_to_istioctl(repository):
    operator = [m for m in repository.install if m.kind == "IstioOperator"]
    assert operator and check_istio_schema(operator) == []
