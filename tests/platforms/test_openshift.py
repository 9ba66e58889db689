"""k8s/overlays/openshift: rendered by kubectl kustomize, admissible under restricted-v2, with a Route that leads somewhere."""

from __future__ import annotations

import copy
import shutil

import pytest

from tests.platforms import openshift_checks as checks
from tests.tools import needs_kubectl

# The venv's kubectl: its built-in kustomize renders the overlay.
pytestmark = needs_kubectl


@pytest.fixture(scope="module")
def overlay():
    return checks.render(checks.OVERLAY)


@pytest.fixture(scope="module")
def base():
    return checks.render(checks.BASE)


def test_overlay_is_admissible_under_restricted_v2(overlay):
    assert checks.scc_problems(overlay) == []


def test_no_fixed_uid_anywhere_and_every_container_still_non_root(overlay):
    # The brief's three facts, stated directly on the rendered YAML.
    assert "runAsUser" not in str(overlay)
    pods = list(checks.pod_specs(overlay))
    assert len(pods) == 4
    for _, pod in pods:
        for container in pod["containers"]:
            assert (container.get("securityContext") or {}).get("runAsNonRoot", pod["securityContext"].get("runAsNonRoot")) is True


def test_base_is_refused_by_the_same_check(base):
    # k8s/base pins runAsUser 10001: what the overlay exists to remove.
    assert any("runAsUser 10001" in problem for problem in checks.scc_problems(base))


def test_route_points_at_a_real_service_port(overlay):
    assert checks.route_problems(overlay) == []


def test_overlay_changes_nothing_else_in_the_base(overlay, base):
    assert checks.drift_problems(overlay, base) == []


def test_every_kubernetes_resource_matches_the_api_schema(overlay):
    assert checks.schema_problems(overlay) == []


# -- broken copies -----------------------------------------------------------------------------------


@pytest.fixture
def k8s_copy(tmp_path):
    """k8s/ in tmp_path: the overlay's ../../base resolves inside the copy."""
    shutil.copytree(checks.ROOT / "k8s", tmp_path / "k8s")
    return tmp_path / "k8s"


def edit(path, old, new):
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


OVERLAY = "overlays/openshift"
INGRESS = "overlays/openshift/ingress"


@pytest.mark.parametrize(
    ("file", "old", "new", "check", "expected"),
    [
        # The patch gone: the base's UID comes back.
        (f"{OVERLAY}/kustomization.yaml", "app in (calculator,gateway)", "app in (calculator)", "scc", "Deployment meshcalc/gateway: securityContext.runAsUser 10001 is fixed"),
        (f"{INGRESS}/istio-ingressgateway-deployment.yaml", "      serviceAccountName:", "      hostNetwork: true\n      serviceAccountName:", "scc", "hostNetwork"),
        (f"{INGRESS}/istio-ingressgateway-deployment.yaml", "        runAsNonRoot: true", "        runAsNonRoot: false", "scc", "runAsNonRoot is not true"),
        (f"{INGRESS}/istio-ingressgateway-deployment.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "scc", "allowPrivilegeEscalation"),
        (f"{INGRESS}/istio-ingressgateway-deployment.yaml", 'drop: ["ALL"]', 'drop: ["ALL"]\n              add: ["NET_ADMIN"]', "scc", "adds capabilities ['NET_ADMIN']"),
        (f"{INGRESS}/istio-ingressgateway-deployment.yaml", "type: RuntimeDefault", "type: Unconfined", "scc", "seccomp profile Unconfined"),
        (f"{INGRESS}/meshcalc-route.yaml", "targetPort: http2", "targetPort: http", "route", "targetPort 'http' is none of the Service's ports"),
        (f"{INGRESS}/meshcalc-route.yaml", "name: istio-ingressgateway", "name: gateway", "route", "no such Service in namespace istio-system"),
        (f"{INGRESS}/istio-ingressgateway-service.yaml", "  selector:\n    istio: ingressgateway", "  selector:\n    istio: egressgateway", "route", "no workload of the overlay matches"),
        (f"{INGRESS}/kustomization.yaml", "  - meshcalc-route.yaml\n", "", "route", "no Route in the overlay"),
        (f"{INGRESS}/istio-ingressgateway-deployment.yaml", "  replicas: 2", "  replica: 2", "schema", "replica"),
        (f"{OVERLAY}/kustomization.yaml", "        path: /spec/template/spec/securityContext/runAsGroup", "        path: /spec/template/spec/securityContext/runAsGroup\n      - op: replace\n        path: /spec/replicas\n        value: 5", "drift", "differs from k8s/base"),
    ],
)
def test_checks_catch_a_broken_overlay(k8s_copy, base, file, old, new, check, expected):
    edit(k8s_copy / file, old, new)
    rendered = checks.render(k8s_copy / OVERLAY)
    problems = {
        "scc": checks.scc_problems,
        "route": checks.route_problems,
        "schema": checks.schema_problems,
        "drift": lambda docs: checks.drift_problems(docs, base),
    }[check](rendered)
    assert problems
    assert any(expected in problem for problem in problems), problems


def test_a_host_path_volume_is_refused(overlay):
    broken = copy.deepcopy(overlay)
    deployment = next(d for d in broken if d["kind"] == "Deployment" and d["metadata"]["name"] == "gateway")
    deployment["spec"]["template"]["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    assert any("of type ['hostPath']" in p for p in checks.scc_problems(broken))
