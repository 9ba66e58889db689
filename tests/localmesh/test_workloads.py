"""A Deployment's manifest to the processes of its replicas."""

from pathlib import Path

import pytest
import yaml

from localmesh.translate import Resource, TranslationError
from localmesh.translate.kube import with_autoscalers
from localmesh.workloads import replica_spec, workload

SERVICES = {"calculator.meshcalc.svc.cluster.local", "gateway.meshcalc.svc.cluster.local"}


def deployment(env=None, command=None, args=None, replicas=2, containers=1) -> Resource:
    container = {
        "name": "app",
        "command": command if command is not None else ["gunicorn"],
        "args": args if args is not None else ["-c", "python:servicekit.gunicorn_conf", "gateway.app:create_app()"],
        "env": env if env is not None else [{"name": "CALCULATOR_URL", "value": "http://calculator/calcular"}],
    }
    document = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "gateway"},
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {"labels": {"app": "gateway", "version": "v1"}},
                "spec": {"containers": [container] * containers},
            },
        },
    }
    return Resource.from_document(document, "k8s/base/gateway-deployment.yaml", "meshcalc")


def test_command_env_labels_and_replicas_come_from_the_manifest():
    w = workload(deployment(), SERVICES)
    assert (w.app, w.config, w.replicas) == ("gateway.app:create_app()", "python:servicekit.gunicorn_conf", 2)
    assert w.labels == {"app": "gateway", "version": "v1"}
    assert w.calls_mesh
    assert [w.pod(i) for i in range(w.replicas)] == ["gateway-0", "gateway-1"]


def autoscaler(target="gateway", minimum=3) -> Resource:
    document = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": target},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                 "minReplicas": minimum, "maxReplicas": 4},
    }
    return Resource.from_document(document, "k8s/base/gateway-horizontalpodautoscaler.yaml", "meshcalc")


def without_replicas() -> Resource:
    resource = deployment()
    spec = {key: value for key, value in resource.spec.items() if key != "replicas"}
    return Resource.from_document({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gateway"},
                                   "spec": spec}, resource.source, "meshcalc")


def test_a_deployment_an_autoscaler_scales_runs_its_min_replicas():
    resources = with_autoscalers([without_replicas(), autoscaler(minimum=3)])
    w = workload(resources[0], SERVICES)
    assert w.replicas == 3
    assert [w.pod(i) for i in range(w.replicas)] == ["gateway-0", "gateway-1", "gateway-2"]


def test_without_an_autoscaler_or_replicas_a_deployment_runs_one_pod():
    assert workload(without_replicas(), SERVICES).replicas == 1
    # An autoscaler of another Deployment, or of another namespace, is not its own.
    (mine, _) = with_autoscalers([without_replicas(), autoscaler(target="calculator-v1")])
    assert workload(mine, SERVICES).replicas == 1


def test_the_autoscaler_wins_over_replicas_set_beside_it():
    """As on a cluster at rest (manifestcheck reports the field: each apply would reset the scale)."""
    (mine, _) = with_autoscalers([deployment(replicas=5), autoscaler(minimum=2)])
    assert workload(mine, SERVICES).replicas == 2


def test_the_local_mesh_runs_the_repositorys_deployments_at_their_autoscalers_minimum():
    from localmesh.loader import Layout, load_kustomization

    layout = Layout(Path(__file__).resolve().parents[2])
    resources = load_kustomization(layout.k8s, layout.root)
    minimums = {r.spec["scaleTargetRef"]["name"]: r.spec["minReplicas"] for r in resources
                if r.kind == "HorizontalPodAutoscaler"}
    deployments = [r for r in resources if r.kind == "Deployment"]
    assert all("replicas" not in r.spec for r in deployments)
    assert {r.name: workload(r, SERVICES).replicas for r in deployments} == minimums == {
        "calculator-v1": 2, "calculator-v2": 1, "gateway": 2,
    }


def test_a_url_outside_the_mesh_does_not_make_a_client():
    env = [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://jaeger-collector.istio-system.svc.cluster.local:4318"}]
    assert not workload(deployment(env=env), SERVICES).calls_mesh


def test_local_overrides_replace_only_what_cannot_hold_on_one_machine(tmp_path):
    env = [
        {"name": "BIND", "value": "0.0.0.0:8080"},
        {"name": "DATA_DIR", "value": "/data"},
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://jaeger:4318"},
        {"name": "CALCULATOR_URL", "value": "http://calculator/calcular"},
        {"name": "KEEPALIVE_SECONDS", "value": "75"},
    ]
    w = workload(deployment(env=env), SERVICES)
    spec = replica_spec(w, 1, 4321, tmp_path, sidecar_port=5555, extra_env={"FAULT_FAILURE_RATE": "0.5"})
    assert spec.name == "gateway-1" and spec.port == 4321 and spec.app == "gateway.app:create_app()"
    assert spec.env == {
        "CALCULATOR_URL": "http://calculator/calcular",
        "KEEPALIVE_SECONDS": "75",
        "DATA_DIR": str(tmp_path / "gateway-1"),
        "HOSTNAME": "gateway-1",
        "HTTP_PROXY": "http://127.0.0.1:5555",
        "NO_PROXY": "127.0.0.1,localhost",
        "FAULT_FAILURE_RATE": "0.5",
    }


def test_an_admin_surface_gets_a_loopback_port_of_its_own(tmp_path):
    env = [{"name": "ADMIN_BIND", "value": "127.0.0.1:9901"}]
    w = workload(deployment(env=env), SERVICES)
    assert w.has_admin
    assert replica_spec(w, 0, 4321, tmp_path, admin_port=6000).env["ADMIN_BIND"] == "127.0.0.1:6000"
    with pytest.raises(TranslationError, match="ADMIN_BIND: it needs an admin port"):
        replica_spec(w, 0, 4321, tmp_path)
    assert not workload(deployment(), SERVICES).has_admin


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"command": ["python", "app.py"], "args": []}, "runs gunicorn apps"),
        ({"args": ["--workers", "4", "gateway.app:create_app()"]}, "--workers: put gunicorn settings"),
        ({"args": ["-c", "x"]}, "expected one gunicorn app"),
        ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {}}}]}, r"env\[0\]: only literal values"),
        ({"containers": 2}, "pods of one container"),
    ],
)
def test_what_the_local_mesh_cannot_run_is_refused_naming_file_and_field(kwargs, message):
    with pytest.raises(TranslationError, match=message) as refused:
        workload(deployment(**kwargs), SERVICES)
    assert "k8s/base/gateway-deployment.yaml: Deployment meshcalc/gateway" in str(refused.value)


def test_the_real_deployments_are_runnable():
    root = Path(__file__).resolve().parents[2] / "k8s" / "base"
    for path in root.glob("*-deployment.yaml"):
        resource = Resource.from_document(yaml.safe_load(path.read_text()), str(path), "meshcalc")
        w = workload(resource, SERVICES)
        assert w.app.endswith(":create_app()")
