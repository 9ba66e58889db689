"""The optional components of k8s/components: the load generator passes every check, each check
fails on a copy broken the way it guards against, and real kustomize builds it alone and included."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from manifestcheck.checks import offline_checks
from manifestcheck.components import check_components
from tests.manifestcheck.conftest import REPO_ROOT, container, of_check
from tests.tools import KUBECTL, needs_kubectl

LOADGEN = "k8s/components/loadgen/loadgen-deployment.yaml"
LOADGEN_DIR = "k8s/components/loadgen"
URL_INDEX = -1  # the target is fortio's last argument


def findings_of(repo_copy):
    return offline_checks(repo_copy.load())  # the loader's problems included


def test_the_load_generator_is_read_with_the_base_namespace(repository):
    (deployment,) = repository.components["loadgen"]
    assert (deployment.kind, deployment.name, deployment.namespace) == ("Deployment", "loadgen", "meshcalc")
    assert check_components(repository.components, repository.install) == []


def set_url(url):
    return lambda d: container(d)["args"].__setitem__(URL_INDEX, url)


@pytest.mark.parametrize(
    "change, check, field",
    [
        (lambda d: container(d).update(image="fortio/fortio:1.75.3"), "pinned-image", "containers[0].image"),
        (lambda d: container(d).update(image="fortio/fortio@sha256:" + "0" * 64), "pinned-image",
         "containers[0].image"),
        (set_url("http://gateway.meshcalc.svc.cluster.local/calcular"), "load-target", "containers[0].args"),
        (set_url("http://istio-ingressgateway.istio-system:8080/calcular"), "load-target", "containers[0].args"),
        (lambda d: container(d)["securityContext"].update(readOnlyRootFilesystem=False), "security-context",
         "containers[0].securityContext.readOnlyRootFilesystem"),
        (lambda d: d["spec"]["template"]["spec"]["securityContext"].update(runAsUser=1337), "proxy-uid",
         "spec.template.spec.securityContext.runAsUser"),
        (lambda d: container(d)["resources"].pop("limits"), "resources", "containers[0].resources.limits"),
        (lambda d: container(d).update(imagePulPolicy="Always"), "kubernetes-schema", "imagePulPolicy"),
    ],
    ids=["no-digest", "no-tag", "not-the-ingress", "not-its-port", "writable-root", "proxy-uid", "no-limits",
         "misspelled-field"],
)
def test_a_broken_load_generator_is_reported(repo_copy, change, check, field):
    assert of_check(findings_of(repo_copy), check) == []
    repo_copy.edit(LOADGEN, change)
    found = of_check(findings_of(repo_copy), check)
    assert found and all(f.file == LOADGEN for f in found), found
    assert any(field in f.field or field in f.message for f in found), found


def test_a_component_must_be_a_component(repo_copy):
    repo_copy.edit(f"{LOADGEN_DIR}/kustomization.yaml", lambda d: d.update(kind="Kustomization"))
    found = of_check(findings_of(repo_copy), "kustomization")
    assert [(f.file, f.field) for f in found] == [(f"{LOADGEN_DIR}/kustomization.yaml", "kind")]


def kustomize(directory) -> list[dict]:
    built = subprocess.run(
        [str(KUBECTL), "kustomize", str(directory)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return [d for d in yaml.safe_load_all(built) if d]


@needs_kubectl
def test_kustomize_builds_the_component_as_the_checks_read_it(repository):
    built = [(d["kind"], d["metadata"]["name"]) for d in kustomize(REPO_ROOT / LOADGEN_DIR)]
    assert built == [(m.kind, m.name) for m in repository.components["loadgen"]]


@needs_kubectl
def test_an_overlay_of_the_base_can_include_the_component(tmp_path):
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # The base's namespace covers the base's resources only: the overlay names it again.
                "namespace": "meshcalc",
                # kustomize takes relative paths only.
                "resources": [os.path.relpath(REPO_ROOT / "k8s" / "base", tmp_path)],
                "components": [os.path.relpath(REPO_ROOT / LOADGEN_DIR, tmp_path)],
            }
        )
    )
    objects = {(d["kind"], d["metadata"]["name"]): d for d in kustomize(tmp_path)}
    assert objects[("Deployment", "loadgen")]["metadata"]["namespace"] == "meshcalc"
    assert ("Deployment", "gateway") in objects


def test_the_docs_name_the_image_the_component_runs(repository):
    (deployment,) = repository.components["loadgen"]
    image = deployment.spec["template"]["spec"]["containers"][0]["image"]
    assert f"`{image}`" in (REPO_ROOT / "docs" / "kind.md").read_text()
