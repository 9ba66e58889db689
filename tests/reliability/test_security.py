"""Security: checkov on the manifests and the Dockerfile, compose-lint on the compose file, each
accepted finding justified where it stands (beside it, or in .compose-lint.yml); the AuthorizationPolicies' intent; no secret in the repository or in
what enters the image; no debug mode, whatever the environment says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from calculator.app import create_app as create_calculator
from gateway.app import create_app as create_gateway
from tests.reliability.support import record
from tests.support import CALCULATOR_APP, GATEWAY_APP, ROOT, get
from tests.tools import FROM_THE_VENV, VENV_BIN, executable, needs

# -- checkov ---------------------------------------------------------------------------------------

# checkov pins packages this project's tree has newer (packaging<24, ...): it lives in a virtual
# environment of its own (Makefile: .venv-checkov), or wherever CHECKOV points.
CHECKOV = os.environ.get("CHECKOV") or next(
    (str(p) for p in (ROOT / ".venv-checkov" / "bin" / "checkov",) if p.exists()), shutil.which("checkov")
)
needs_checkov = needs("checkov", CHECKOV, "make .venv-checkov/.installed (make test builds it; see Makefile)")


def checkov(*arguments: str) -> dict:
    # Offline: no guideline download (BC_SKIP_MAPPING), no policy download (--skip-download).
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    result = subprocess.run(
        [CHECKOV, *arguments, "--compact", "--quiet", "--skip-download", "-o", "json"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def assert_clean(report: dict, what: str) -> None:
    summary = report["summary"]
    failed = [(c["check_id"], c["file_path"], c["resource"]) for c in report.get("results", {}).get("failed_checks", [])]
    skipped = report.get("results", {}).get("skipped_checks", [])
    record(f"checkov-{what}", **{k: summary[k] for k in ("passed", "failed", "skipped", "parsing_errors", "resource_count")})
    assert summary["resource_count"] > 0 and summary["parsing_errors"] == 0, summary
    assert failed == [], failed
    # Every accepted finding says why, where it stands.
    unexplained = [(c["check_id"], c["file_path"]) for c in skipped if len((c.get("suppress_comment") or "").strip()) < 20]
    assert unexplained == [], unexplained


@needs_checkov
def test_checkov_finds_nothing_in_the_kubernetes_manifests():
    assert_clean(checkov("-d", "k8s", "--framework", "kubernetes"), "k8s")


@needs_checkov
def test_checkov_finds_nothing_in_the_dockerfile():
    assert_clean(checkov("-f", "Dockerfile", "--framework", "dockerfile"), "dockerfile")


@needs_checkov
def test_checkov_catches_what_it_should(tmp_path):
    # The control: a privileged, root, latest-tagged pod must fail, so a clean report means something.
    bad = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "namespace": "x"},
        "spec": {"containers": [{"name": "c", "image": "busybox:latest", "securityContext": {"privileged": True}}]},
    }
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    report = checkov("-d", str(tmp_path), "--framework", "kubernetes")
    failed = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert {"CKV_K8S_16", "CKV_K8S_14"} <= failed  # privileged; image tag latest


# -- compose-lint on compose.yaml -------------------------------------------------------------------
#
# checkov 3 has no docker-compose framework (it parses compose.yaml as nothing), so the compose file
# gets a linter that reads Compose: compose-lint, with OWASP's and CIS Docker Benchmark's rules.

COMPOSE_LINT = VENV_BIN / "compose-lint"
needs_compose_lint = needs("compose-lint", executable(COMPOSE_LINT), f"the wheel compose-lint: {FROM_THE_VENV}")


def compose_lint(compose: Path) -> tuple[int, dict]:
    """Every finding at any severity counts (--fail-on low); a config mistake is an error (--strict-config)."""
    result = subprocess.run(
        [str(COMPOSE_LINT), "check", "--format", "json", "--fail-on", "low", "--strict-config",
         "--config", str(ROOT / ".compose-lint.yml"), str(compose)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    return result.returncode, json.loads(result.stdout)


@needs_compose_lint
def test_compose_lint_finds_nothing_in_the_compose_file():
    returncode, report = compose_lint(ROOT / "compose.yaml")
    findings = report["findings"]
    open_findings = [(f["rule_id"], f["service"], f["message"]) for f in findings if not f["suppressed"]]
    accepted = [f for f in findings if f["suppressed"]]
    record("compose-lint", findings=len(findings), suppressed=len(accepted), rules=sorted({f["rule_id"] for f in accepted}))
    assert report["errors"] == [] and report["warnings"] == [], report
    assert open_findings == [] and returncode == 0, open_findings
    # Every accepted finding says why, in .compose-lint.yml.
    assert [f["rule_id"] for f in accepted if len((f.get("suppression_reason") or "").strip()) < 20] == []


@needs_compose_lint
def test_compose_lint_catches_what_it_should(tmp_path):
    # The control: compose.yaml's Envoy made privileged, given the Docker socket, its capabilities
    # back and its port on every interface must fail, so a clean report means something.
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    envoy = compose["services"]["envoy"]
    envoy.update(privileged=True, ports=["8080:8080"])
    envoy.pop("cap_drop")
    envoy["volumes"].append("/var/run/docker.sock:/var/run/docker.sock")
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(compose, sort_keys=False))
    returncode, report = compose_lint(tmp_path / "compose.yaml")
    found = {(f["rule_id"], f["service"]) for f in report["findings"] if not f["suppressed"]}
    # docker socket, privileged, port on every interface, capabilities not dropped
    assert {("CL-0001", "envoy"), ("CL-0002", "envoy"), ("CL-0005", "envoy"), ("CL-0006", "envoy")} <= found
    assert returncode == 1


# -- the AuthorizationPolicies' intent -------------------------------------------------------------
#
# Not enforced by the local mesh (README: applied on a cluster only), and deliberately: the policy
# allows an identity, a SPIFFE principal proven by the caller's mTLS certificate, and the local mesh
# has no mTLS. A header standing for the identity would be set by whatever reaches the loopback
# port, so an RBAC filter matching it would test Envoy's header matcher, not who can call whom.
# What holds without a cluster is checked here: the policies name exactly the callers that the
# manifests make, under STRICT mTLS.


def documents(directory: Path) -> list[dict]:
    return [d for p in sorted(directory.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def spiffe(namespace: str, service_account: str) -> str:
    return f"cluster.local/ns/{namespace}/sa/{service_account}"


def test_only_the_gateway_may_call_the_calculator_and_only_post_calcular():
    k8s, istio = documents(ROOT / "k8s" / "base"), documents(ROOT / "istio")
    namespace = yaml.safe_load((ROOT / "k8s" / "base" / "kustomization.yaml").read_text())["namespace"]
    deployments = {d["metadata"]["name"]: d for d in k8s if d["kind"] == "Deployment"}
    policy = next(d for d in istio if d["kind"] == "AuthorizationPolicy" and d["metadata"]["name"] == "calculator")
    selected = [
        name for name, d in deployments.items()
        if policy["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    # The callers the manifests make: every Deployment whose environment names the calculator.
    callers = {
        name for name, d in deployments.items()
        for c in d["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])
        if str(e.get("value", "")).startswith("http://calculator")
    }
    (rule,) = policy["spec"]["rules"]
    principals = {p for source in rule["from"] for p in source["source"]["principals"]}
    operations = [o["operation"] for o in rule["to"]]
    assert policy["spec"]["action"] == "ALLOW"
    assert sorted(selected) == ["calculator-v1", "calculator-v2"]
    assert callers == {"gateway"}
    assert principals == {spiffe(namespace, deployments["gateway"]["spec"]["template"]["spec"]["serviceAccountName"])}
    # Its own identity, not the calculator's: a calculator pod is no allowed caller.
    assert {deployments[n]["spec"]["template"]["spec"]["serviceAccountName"] for n in selected} == {"calculator"}
    assert operations == [{"methods": ["POST"], "paths": ["/calcular"]}]
    # The principal is proven by mTLS only where plaintext is refused.
    (peer,) = [d for d in istio if d["kind"] == "PeerAuthentication"]
    assert peer["spec"]["mtls"]["mode"] == "STRICT" and "selector" not in peer["spec"]


def test_only_the_ingress_gateway_may_call_the_gateway():
    istio = documents(ROOT / "istio")
    policy = next(d for d in istio if d["kind"] == "AuthorizationPolicy" and d["metadata"]["name"] == "gateway")
    principals = {p for rule in policy["spec"]["rules"] for s in rule["from"] for p in s["source"]["principals"]}
    assert principals == {spiffe("istio-system", "istio-ingressgateway-service-account")}
    overlay = documents(ROOT / "k8s" / "overlays" / "openshift" / "ingress")
    accounts = {d["metadata"]["name"] for d in overlay if d["kind"] == "ServiceAccount"}
    assert "istio-ingressgateway-service-account" in accounts


# -- secrets ---------------------------------------------------------------------------------------

DETECT_SECRETS = Path(sys.executable).with_name("detect-secrets")
NOT_OURS = r"(^|/)(\.venv[^/]*|\.git|\.run|\.hypothesis|\.pytest_cache|\.ruff_cache|[^/]*\.egg-info|node_modules|__pycache__)/"


def scan(*paths: str, cwd: Path = ROOT) -> dict:
    result = subprocess.run(
        [str(DETECT_SECRETS), "scan", "--all-files", "--exclude-files", NOT_OURS, *paths],
        capture_output=True, text=True, cwd=cwd, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)["results"]


def test_no_secret_in_the_repository():
    found = scan(".")
    record("detect-secrets-repository", findings=sum(len(v) for v in found.values()))
    assert found == {}, {path: [(s["type"], s["line_number"]) for s in items] for path, items in found.items()}


def test_no_secret_in_what_enters_the_image():
    # The build context is .dockerignore's allowlist: exactly what the Dockerfile can COPY.
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    context = [line[1:].rstrip("/") for line in lines]
    assert {"calculator", "gateway", "servicekit"} <= set(context)
    found = scan(*context)
    record("detect-secrets-image-context", paths=context, findings=sum(len(v) for v in found.values()))
    assert found == {}


def test_the_scanner_finds_a_planted_secret(tmp_path):
    # Made at run time, so that this file itself holds no secret-looking literal.
    key = "AKIA" + "Z7QW3E4R5T6Y7U8I"
    (tmp_path / "settings.py").write_text(f'AWS_ACCESS_KEY_ID = "{key}"\n')
    found = scan(".", cwd=tmp_path)
    assert "settings.py" in found


# -- no debug mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize("create", [create_calculator, create_gateway])
def test_flask_debug_in_the_environment_does_not_turn_debug_mode_on(monkeypatch, tmp_path, create):
    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = create(environ={"DATA_DIR": str(tmp_path)})
    assert app.debug is False
    response = app.test_client().get("/console")  # the Werkzeug debugger's console
    assert response.status_code == 404 and response.get_json() == {"error": "Ruta no encontrada"}


@pytest.mark.processes
@pytest.mark.parametrize("app", [CALCULATOR_APP, GATEWAY_APP])
def test_a_real_server_started_with_flask_debug_serves_no_debugger(start_service, app):
    debug_env = {"FLASK_DEBUG": "1", "FLASK_ENV": "development", "WERKZEUG_DEBUG_PIN": "off"}
    service = start_service(f"debug-{app.partition('.')[0]}", app, debug_env)
    status, headers, body = get(f"{service.url}/console")  # the Werkzeug debugger's console
    assert (status, headers["content-type"]) == (404, "application/json"), body[:200]
    # The debugger's own resources, asked as it asks them: whatever answers, it is not the debugger.
    status, headers, body = get(f"{service.url}/?__debugger__=yes&cmd=resource&f=debugger.js")
    assert b"Werkzeug" not in body and b"debugger" not in body.lower()
