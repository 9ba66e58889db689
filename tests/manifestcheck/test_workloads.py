"""Each workload check fails on a pod template broken the way it guards against."""

from __future__ import annotations

import pytest

from manifestcheck import workloads
from tests.manifestcheck.conftest import REPO_ROOT, container, env_of

GATEWAY = "k8s/base/gateway-deployment.yaml"
CALCULATOR = "k8s/base/calculator-v1-deployment.yaml"


def run(repo_copy, check):
    return check(list(repo_copy.load().mesh))


def pod(document):
    return document["spec"]["template"]["spec"]


def annotations(document):
    return document["spec"]["template"]["metadata"]["annotations"]


@pytest.mark.parametrize(
    "change, field",
    [
        (
            lambda d: pod(d)["securityContext"].update(runAsUser=1337),
            "spec.template.spec.securityContext.runAsUser",
        ),
        (
            lambda d: container(d)["securityContext"].update(runAsUser=1337),
            "spec.template.spec.containers[0].securityContext.runAsUser",
        ),
    ],
    ids=["pod", "container"],
)
def test_no_pod_runs_as_the_sidecar_uid(repo_copy, change, field):
    repo_copy.edit(GATEWAY, change)
    (finding,) = run(repo_copy, workloads.check_no_proxy_uid)
    assert (finding.check, finding.file, finding.field) == ("proxy-uid", GATEWAY, field)


@pytest.mark.parametrize(
    "change, field",
    [
        (
            lambda d: container(d)["securityContext"].update(readOnlyRootFilesystem=False),
            "securityContext.readOnlyRootFilesystem",
        ),
        (
            lambda d: container(d)["securityContext"].pop("allowPrivilegeEscalation"),
            "securityContext.allowPrivilegeEscalation",
        ),
        (
            lambda d: container(d)["securityContext"].update(capabilities={"drop": ["NET_RAW"]}),
            "securityContext.capabilities.drop",
        ),
        (
            lambda d: container(d)["securityContext"].update(
                capabilities={"drop": ["ALL"], "add": ["NET_ADMIN"]}
            ),
            "securityContext.capabilities.add",
        ),
        (lambda d: container(d)["securityContext"].update(privileged=True), "securityContext.privileged"),
        (lambda d: pod(d)["securityContext"].pop("seccompProfile"), "securityContext.seccompProfile.type"),
        (
            lambda d: container(d)["securityContext"].update(runAsUser=0, runAsNonRoot=False),
            "securityContext.runAsNonRoot",
        ),
    ],
    ids=[
        "read-only-root",
        "escalation",
        "capabilities-drop",
        "capabilities-add",
        "privileged",
        "seccomp",
        "root",
    ],
)
def test_the_hardened_security_context(repo_copy, change, field):
    repo_copy.edit(GATEWAY, change)
    findings = run(repo_copy, workloads.check_security_context)
    assert f"spec.template.spec.containers[0].{field}" in {f.field for f in findings}
    assert {f.check for f in findings} == {"security-context"}


def test_the_pod_level_context_counts_for_the_containers(repo_copy):
    def move_to_pod(document):
        container(document)["securityContext"].pop("runAsNonRoot")

    repo_copy.edit(GATEWAY, move_to_pod)  # the pod says runAsNonRoot: true
    assert run(repo_copy, workloads.check_security_context) == []


def test_the_service_account_token_is_not_mounted(repo_copy):
    repo_copy.edit(CALCULATOR, lambda d: pod(d).pop("automountServiceAccountToken"))
    (finding,) = run(repo_copy, workloads.check_security_context)
    assert finding.field == "spec.template.spec.automountServiceAccountToken"


@pytest.mark.parametrize("probe", workloads.PROBES)
def test_every_probe_is_there(repo_copy, probe):
    repo_copy.edit(CALCULATOR, lambda d: container(d).pop(probe))
    (finding,) = run(repo_copy, workloads.check_probes)
    assert (finding.check, finding.field, finding.message) == (
        "probes",
        f"spec.template.spec.containers[0].{probe}",
        "missing",
    )


def test_a_probe_aims_at_a_declared_port(repo_copy):
    repo_copy.edit(CALCULATOR, lambda d: container(d)["readinessProbe"]["httpGet"].update(port="metrics"))
    (finding,) = run(repo_copy, workloads.check_probes)
    assert "'metrics' is not a declared port" in finding.message


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda d: container(d)["resources"]["limits"].pop("memory"), "resources.limits.memory"),
        (lambda d: container(d)["resources"].pop("requests"), "resources.requests.cpu"),
        (lambda d: container(d)["resources"]["requests"].update(cpu="2"), "resources.requests.cpu"),
    ],
    ids=["no-limit", "no-requests", "above-limit"],
)
def test_requests_and_limits(repo_copy, change, field):
    repo_copy.edit(GATEWAY, change)
    findings = run(repo_copy, workloads.check_resources)
    assert f"spec.template.spec.containers[0].{field}" in {f.field for f in findings}


def test_gunicorn_gets_a_writable_tmp(repo_copy):
    def drop_tmp(document):
        container(document)["volumeMounts"] = [
            m for m in container(document)["volumeMounts"] if m["mountPath"] != "/tmp"
        ]

    repo_copy.edit(GATEWAY, drop_tmp)
    (finding,) = run(repo_copy, workloads.check_writable_paths)
    assert (finding.check, finding.field) == (
        "writable-paths",
        "spec.template.spec.containers[0].volumeMounts",
    )


def test_the_data_dir_is_a_volume(repo_copy):
    repo_copy.edit(CALCULATOR, lambda d: env_of(d, "DATA_DIR").update(value="/var/lib/meshcalc"))
    (finding,) = run(repo_copy, workloads.check_writable_paths)
    assert finding.field == "spec.template.spec.containers[0].env.DATA_DIR"


def test_a_mount_names_a_volume(repo_copy):
    repo_copy.edit(CALCULATOR, lambda d: pod(d)["volumes"].pop())
    findings = run(repo_copy, workloads.check_writable_paths)
    assert "no volume data" in {f.message for f in findings}


@pytest.mark.parametrize(
    "change",
    [
        lambda d: pod(d).update(terminationGracePeriodSeconds=25),
        lambda d: env_of(d, "GRACEFUL_TIMEOUT_SECONDS").update(value="30"),
        # Without the field Kubernetes gives 30 s: too short for a 10 s drain.
        lambda d: (
            pod(d).pop("terminationGracePeriodSeconds"),
            env_of(d, "SHUTDOWN_DRAIN_SECONDS").update(value="10"),
        ),
    ],
    ids=["grace-shortened", "graceful-lengthened", "default-grace"],
)
def test_the_grace_period_fits_the_drain(repo_copy, change):
    repo_copy.edit(CALCULATOR, change)
    (finding,) = run(repo_copy, workloads.check_termination_grace)
    assert (finding.check, finding.field) == (
        "termination-grace",
        "spec.template.spec.terminationGracePeriodSeconds",
    )


def test_the_gunicorn_defaults_apply_when_the_env_is_silent(repo_copy):
    def silent(document):
        container(document)["env"] = [
            e for e in container(document)["env"] if not e["name"].endswith("_SECONDS")
        ]
        pod(document)["terminationGracePeriodSeconds"] = 25  # not above 5 + 20

    repo_copy.edit(CALCULATOR, silent)
    (finding,) = run(repo_copy, workloads.check_termination_grace)
    assert "drain 5s + graceful 20s" in finding.message


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda d: annotations(d).pop("prometheus.io/scrape"), "prometheus.io/scrape"),
        (lambda d: annotations(d).update({"prometheus.io/port": "9090"}), "prometheus.io/port"),
        (lambda d: annotations(d).update({"prometheus.io/path": "/stats"}), "prometheus.io/path"),
    ],
    ids=["scrape", "port", "path"],
)
def test_scrape_annotations_lead_to_the_apps_metrics(repo_copy, change, key):
    repo_copy.edit(GATEWAY, change)
    (finding,) = run(repo_copy, workloads.check_scrape_annotations)
    assert finding.field == f"spec.template.metadata.annotations.{key}"


@pytest.mark.parametrize(
    "value, message",
    [
        ("http://jaeger-collector.istio-system.svc.cluster.local:4317", "OTLP over HTTP listens on 4318"),
        ("http://jaeger-collector.istio-system.svc.cluster.local:4318/v1/traces", "give the base URL"),
        ("jaeger-collector:4318", "not an http(s) URL"),
    ],
    ids=["grpc-port", "signal-path", "no-scheme"],
)
def test_the_otlp_endpoint_is_an_otlp_http_base_url(repo_copy, value, message):
    repo_copy.edit(GATEWAY, lambda d: env_of(d, "OTEL_EXPORTER_OTLP_ENDPOINT").update(value=value))
    (finding,) = run(repo_copy, workloads.check_otlp_endpoint)
    assert (finding.check, finding.field) == (
        "otlp-endpoint",
        "spec.template.spec.containers[0].env.OTEL_EXPORTER_OTLP_ENDPOINT",
    )
    assert message in finding.message


def test_a_missing_otlp_endpoint_is_reported(repo_copy):
    repo_copy.edit(
        GATEWAY,
        lambda d: container(d).update(
            env=[e for e in container(d)["env"] if e["name"] != "OTEL_EXPORTER_OTLP_ENDPOINT"]
        ),
    )
    (finding,) = run(repo_copy, workloads.check_otlp_endpoint)
    assert "missing" in finding.message


@pytest.mark.parametrize(
    "file, change, message",
    [
        (
            "k8s/base/calculator-v2-poddisruptionbudget.yaml",
            lambda d: d["spec"].update(minAvailable=1, maxUnavailable=None),
            "allows no eviction",
        ),
        (
            "k8s/base/gateway-deployment.yaml",
            lambda d: d["spec"].update(replicas=2),
            "set while HorizontalPodAutoscaler gateway scales it",
        ),
        (
            "k8s/base/gateway-horizontalpodautoscaler.yaml",
            lambda d: d["spec"]["scaleTargetRef"].update(kind="StatefulSet"),
            "no HorizontalPodAutoscaler",
        ),
        (
            "k8s/base/gateway-poddisruptionbudget.yaml",
            lambda d: d["spec"]["selector"]["matchLabels"].update(app="gw"),
            "no PodDisruptionBudget",
        ),
    ],
    ids=["pdb-blocks-drains", "replicas-beside-hpa", "no-hpa", "no-pdb"],
)
def test_budgets_and_autoscalers(repo_copy, file, change, message):
    def apply(document):
        change(document)
        document["spec"] = {k: v for k, v in document["spec"].items() if v is not None}

    repo_copy.edit(file, apply)
    findings = run(repo_copy, workloads.check_availability)
    assert any(f.check == "availability" and message in f.message for f in findings), findings


def test_a_budget_is_weighed_against_the_autoscalers_minimum(repo_copy):
    """The pods a PodDisruptionBudget must leave are counted from minReplicas (the Deployment has no replicas)."""
    def min_available(document):
        document["spec"].pop("maxUnavailable")
        document["spec"]["minAvailable"] = 2

    repo_copy.edit("k8s/base/gateway-poddisruptionbudget.yaml", min_available)
    (finding,) = run(repo_copy, workloads.check_availability)
    assert finding.file == "k8s/base/gateway-poddisruptionbudget.yaml"
    assert "allows no eviction of gateway's 2 pod(s)" in finding.message
    repo_copy.edit("k8s/base/gateway-horizontalpodautoscaler.yaml", lambda d: d["spec"].update(minReplicas=3))
    assert run(repo_copy, workloads.check_availability) == []


def test_replicas_beside_an_autoscaler_are_named_where_they_are_set(repo_copy):
    repo_copy.edit("k8s/base/calculator-v1-deployment.yaml", lambda d: d["spec"].update(replicas=2))
    (finding,) = run(repo_copy, workloads.check_availability)
    assert (finding.file, finding.resource, finding.field) == (
        "k8s/base/calculator-v1-deployment.yaml", "Deployment meshcalc/calculator-v1", "spec.replicas"
    )


def test_parse_quantity():
    assert workloads.parse_quantity("500m") == 0.5
    assert workloads.parse_quantity("96Mi") == 96 * 2**20
    assert workloads.parse_quantity("1G") == 1e9
    assert workloads.parse_quantity("lots") is None


def test_the_gunicorn_defaults_checked_are_the_ones_gunicorn_gets():
    """manifestcheck reads servicekit.serving_defaults; gunicorn_conf must take its defaults from there."""
    import subprocess
    import sys

    probe = "import servicekit.gunicorn_conf as c; print(c.keepalive, c.graceful_timeout, c.drain_seconds)"
    environment = {"PATH": "/usr/bin:/bin"}
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env=environment, cwd=REPO_ROOT).stdout.split()
    keepalive, graceful, drain = (float(value) for value in output)
    assert workloads.GUNICORN_DEFAULTS == {
        "KEEPALIVE_SECONDS": keepalive,
        "GRACEFUL_TIMEOUT_SECONDS": graceful,
        "SHUTDOWN_DRAIN_SECONDS": drain,
    }


def test_the_gateways_client_defaults_are_the_gateways():
    from gateway.config import GatewaySettings
    from manifestcheck.resilience import CLIENTS

    (client,) = CLIENTS.values()
    defaults = GatewaySettings()
    assert (client.default_url, client.default_timeout) == (defaults.calculator_url, defaults.calculator_timeout_seconds)
