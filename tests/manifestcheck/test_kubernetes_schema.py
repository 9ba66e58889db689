"""Strict OpenAPI validation of the Kubernetes manifests, for every Kubernetes version kind ships."""

from __future__ import annotations

from manifestcheck.kubernetes_schema import KIND_KUBERNETES_VERSIONS, check_kubernetes_schema, field_path
from tests.manifestcheck.conftest import container


def kubernetes_findings(repo_copy):
    repository = repo_copy.load()
    return check_kubernetes_schema([*repository.kubernetes, *repository.addons, *repository.install])


def test_a_misspelled_field_fails_in_strict_mode(repo_copy):
    repo_copy.edit(
        "k8s/base/gateway-deployment.yaml",
        lambda d: container(d).update(readinessProbes=container(d).pop("readinessProbe")),
    )
    (finding,) = kubernetes_findings(repo_copy)
    assert finding.check == "kubernetes-schema"
    assert finding.file == "k8s/base/gateway-deployment.yaml"
    assert finding.resource == "Deployment meshcalc/gateway"
    assert finding.field == "spec.template.spec.containers[0]"
    assert "readinessProbes" in finding.message
    # One finding for all versions, naming them.
    assert all(version in finding.message for version in KIND_KUBERNETES_VERSIONS)


def test_a_wrong_type_fails(repo_copy):
    repo_copy.edit("k8s/base/calculator-v1-deployment.yaml", lambda d: d["spec"].update(replicas="2"))
    (finding,) = kubernetes_findings(repo_copy)
    assert finding.field == "spec.replicas"


def test_an_unknown_kind_fails(repo_copy):
    repo_copy.edit(
        "k8s/base/gateway-poddisruptionbudget.yaml", lambda d: d.update(kind="PodDisruptionBudgett")
    )
    (finding,) = kubernetes_findings(repo_copy)
    assert finding.field == "apiVersion"
    assert "PodDisruptionBudgett" in finding.message


def test_a_removed_api_version_fails(repo_copy):
    repo_copy.edit(
        "k8s/base/gateway-horizontalpodautoscaler.yaml", lambda d: d.update(apiVersion="autoscaling/v2beta2")
    )
    (finding,) = kubernetes_findings(repo_copy)
    assert "autoscaling/v2beta2" in finding.message


def test_the_addons_configmap_is_validated_too(repo_copy):
    repo_copy.edit("k8s/addons/grafana-provisioning.yaml", lambda d: d.update(datas=d.pop("data")))
    (finding,) = kubernetes_findings(repo_copy)
    assert finding.file == "k8s/addons/grafana-provisioning.yaml"


def test_field_paths_read_like_yaml():
    assert (
        field_path(["spec", "template", "spec", "containers", 0, "env", 2])
        == "spec.template.spec.containers[0].env[2]"
    )
    assert field_path([]) == "-"
