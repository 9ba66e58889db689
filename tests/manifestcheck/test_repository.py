"""The repository's own manifests pass every offline check, and agree with what real kustomize builds."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from manifestcheck.checks import mesh_checks, offline_checks
from manifestcheck.loading import ISTIO, ISTIO_INGRESS, KUBERNETES_BASE
from tests.manifestcheck.conftest import REPO_ROOT
from tests.tools import KUBECTL, needs_kubectl


def test_every_offline_check_passes(repository):
    findings = offline_checks(repository)
    assert findings == [], "\n".join(map(str, findings))


def test_the_repository_has_what_the_issue_lists(repository):
    kinds = sorted({(m.kind, m.name) for m in repository.mesh})
    for expected in [
        ("Namespace", "meshcalc"),
        ("Deployment", "calculator-v1"),
        ("Deployment", "calculator-v2"),
        ("Deployment", "gateway"),
        ("Service", "calculator"),
        ("Service", "gateway"),
        ("ServiceAccount", "calculator"),
        ("ServiceAccount", "gateway"),
        ("Gateway", "meshcalc-gateway"),
        ("VirtualService", "gateway"),
        ("VirtualService", "calculator"),
        ("DestinationRule", "calculator"),
        ("PeerAuthentication", "default"),
        ("AuthorizationPolicy", "calculator"),
    ]:
        assert expected in kinds
    # The scenarios the issue lists; others may be added.
    assert set(repository.scenarios) >= {
        "virtual-service-calculator-0-100",
        "virtual-service-calculator-100-0",
        "virtual-service-calculator-50-50",
        "virtual-service-calculator-90-10",
        "destination-rule-calculator-circuit-breaker",
        "virtual-service-calculator-fault-abort",
        "virtual-service-calculator-fault-delay",
        "virtual-service-calculator-mirror-v2",
        "virtual-service-calculator-no-retries",
    }


def test_canary_90_10_is_the_base_virtual_service(repository):
    base = next(m for m in repository.istio if m.kind == "VirtualService" and m.name == "calculator")
    (scenario,) = repository.scenarios["virtual-service-calculator-90-10"]
    assert scenario.body == base.body


@needs_kubectl
@pytest.mark.parametrize("directory", [KUBERNETES_BASE, ISTIO, ISTIO_INGRESS])
def test_the_local_loader_reads_what_kustomize_builds(repository, directory):
    """Our loader (resources + namespace only) sees the same objects as `kubectl kustomize`."""
    built = subprocess.run(
        [str(KUBECTL), "kustomize", str(REPO_ROOT / directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    from_kustomize = sorted(
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
        for d in yaml.safe_load_all(built)
        if d
    )
    loaded = [m for m in repository.mesh if Path(m.source).parent.as_posix() == directory]
    # kustomize gives cluster-scoped objects (the Namespace) no namespace.
    from_loader = sorted((m.kind, None if m.kind == "Namespace" else m.namespace, m.name) for m in loaded)
    assert from_loader == from_kustomize


def test_each_mesh_check_runs_on_the_base(repository):
    for check in mesh_checks(repository):
        assert check(list(repository.mesh)) == []


def test_the_pinned_versions_agree():
    """Istio and kind versions: the IstioOperator's tag, the script, the workflow and the docs name the same."""
    script = (REPO_ROOT / "scripts/kind.sh").read_text()
    # The script takes the Istio release from the IstioOperator's tag (unless ISTIO_VERSION is set).
    istio = str(yaml.safe_load((REPO_ROOT / "istio/install/istio-kind.yaml").read_text())["spec"]["tag"])
    assert re.search(r'ISTIO_VERSION="\$\{ISTIO_VERSION:-\$\(awk .*"\$ROOT/istio/install/istio-kind\.yaml"\)\}"', script)
    kind = re.search(r'KIND_VERSION="(v[0-9.]+)"', script)[1]
    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/kind.yml").read_text())
    # The workflow reads the Istio release as the script does (tests/github/test_kind_workflow.py).
    assert workflow["env"] == {"KIND_VERSION": kind}
    assert f"kind {kind}" in (REPO_ROOT / "k8s/kind/cluster.yaml").read_text()
    docs = (REPO_ROOT / "docs/kind.md").read_text()
    assert f"ISTIO_VERSION={istio}" in docs and f"kind@{kind}" in docs


@pytest.mark.parametrize(
    "text, check, field, message",
    [
        ("resources: calculator-service.yaml\n", "load", "-", "resources: must be a list of paths"),
        ("resources: [calculator-service.yaml]\ncommonLabels: {team: x}\n", "kustomization", "commonLabels",
         "only resources and namespace are read by the local mesh"),
        ("resources: [nada.yaml]\n", "kustomization", "resources[0]", "'nada.yaml' is not a file of k8s/base/"),
        ("resources: []\n", "kustomization", "resources", "lists no resource file"),
    ],
    ids=["not-a-list", "a-field-the-mesh-ignores", "no-such-file", "empty"],
)
def test_a_broken_kustomization_is_reported_as_the_local_mesh_reads_it(repo_copy, text, check, field, message):
    """manifestcheck reads kustomization.yaml with localmesh.loader's reader: what it refuses is a finding."""
    repo_copy.write(f"{KUBERNETES_BASE}/kustomization.yaml", text)
    found = [f for f in repo_copy.load().problems if f.file == f"{KUBERNETES_BASE}/kustomization.yaml"]
    assert [(f.check, f.field) for f in found] == [(check, field)], found
    assert message in found[0].message
