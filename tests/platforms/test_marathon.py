"""mesos/marathon.json: a Marathon group that parses, would be accepted, and runs what k8s/base runs."""

from __future__ import annotations

import copy
import json

import pytest

from tests.platforms import marathon_checks as checks


@pytest.fixture(scope="module")
def group():
    return checks.load()


def test_it_is_json_marathon_accepts(group):
    assert checks.structure_problems(group) == []


def test_it_runs_what_the_k8s_deployments_run(group):
    assert checks.k8s_match_problems(group, checks.k8s_deployments()) == []
    assert {app: group_app["instances"] for app, group_app in checks.apps(group).items() if "jaeger" not in app} == {
        "/meshcalc/calculator-v1": 2,
        "/meshcalc/calculator-v2": 1,
        "/meshcalc/gateway": 2,
    }


def test_its_urls_reach_apps_of_the_group(group):
    assert checks.discovery_problems(group) == []


def test_mesos_dns_names():
    assert checks.mesos_dns_name("/meshcalc/calculator-v1") == "calculator-v1-meshcalc.marathon.mesos"


def test_invalid_json_does_not_load(tmp_path):
    path = tmp_path / "marathon.json"
    path.write_text(checks.MARATHON_FILE.read_text().replace('"instances": 2,', '"instances": 2', 1))
    with pytest.raises(json.JSONDecodeError):
        checks.load(path)


def app(group, name):
    return checks.apps(group)[f"/meshcalc/{name}"]


def parameter(group, name, key):
    return next(p for p in app(group, name)["container"]["docker"]["parameters"] if p["key"] == key)


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda g: app(g, "gateway").update(id="/meshcalc/Gateway_1"), "id is not a path"),
        (lambda g: app(g, "gateway").update(cmd="gunicorn"), "both cmd and args"),
        (lambda g: app(g, "gateway").pop("healthChecks"), "no health check"),
        (lambda g: app(g, "gateway")["healthChecks"][0].update(protocol="MESOS_HTTP2"), "protocol MESOS_HTTP2"),
        (lambda g: app(g, "gateway")["healthChecks"][0].update(portIndex=1), "portIndex 1 is no port mapping"),
        (lambda g: app(g, "gateway")["readinessChecks"][0].update(portName="http-api"), "portName 'http-api'"),
        (lambda g: app(g, "gateway")["readinessChecks"][0].update(timeoutSeconds=2), "timeoutSeconds must be below"),
        (lambda g: app(g, "gateway")["env"].update(CALCULATOR_TIMEOUT_SECONDS=5), "env values must be strings"),
        (lambda g: app(g, "gateway")["networks"][0].pop("name"), "needs its name"),
        (lambda g: app(g, "gateway")["upgradeStrategy"].update(maximumOverCapacity=2), "outside 0..1"),
        (lambda g: app(g, "gateway").update(dependencies=["/meshcalc/calculator"]), "no app of the group"),
        (lambda g: app(g, "gateway")["container"]["docker"].update(privileged=True), "privileged container"),
    ],
)
def test_structure_check_catches(group, break_it, expected):
    broken = copy.deepcopy(group)
    break_it(broken)
    assert any(expected in p for p in checks.structure_problems(broken))


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda g: app(g, "calculator-v1").update(instances=1), "1 instances, the Deployment has 2"),
        (lambda g: app(g, "calculator-v2")["container"]["docker"].update(image="meshcalc:latest"), "image meshcalc:latest"),
        (lambda g: app(g, "gateway").update(args=["gunicorn", "gateway.app:create_app()"]), "args"),
        (lambda g: app(g, "gateway")["env"].pop("LOG_LEVEL"), "env names ['LOG_LEVEL']"),
        (lambda g: app(g, "gateway")["env"].update(EXTRA="1"), "env names ['EXTRA']"),
        (lambda g: app(g, "calculator-v2")["env"].update(CALCULATOR_VERSION="v1"), "CALCULATOR_VERSION='v1'"),
        (lambda g: app(g, "calculator-v1").update(mem=128), "mem 128"),
        (lambda g: app(g, "calculator-v1")["healthChecks"][0].update(path="/"), "no MESOS_HTTP health check on /healthz"),
        (lambda g: app(g, "calculator-v1").pop("readinessChecks"), "no readiness check on /readyz"),
        (lambda g: app(g, "calculator-v1")["upgradeStrategy"].update(minimumHealthCapacity=0.5), "minimumHealthCapacity 0.5"),
        (lambda g: app(g, "calculator-v1")["upgradeStrategy"].update(maximumOverCapacity=0.2), "fewer than 1 new instance"),
        (lambda g: app(g, "calculator-v1").update(taskKillGracePeriodSeconds=5), "taskKillGracePeriodSeconds 5"),
        (lambda g: parameter(g, "gateway", "user").update(value="0:0"), "docker user is not 10001:0"),
        (lambda g: parameter(g, "gateway", "read-only").update(value="false"), "not read-only"),
        (lambda g: parameter(g, "gateway", "cap-drop").update(value="NET_RAW"), "capabilities not dropped"),
        (lambda g: app(g, "calculator-v1")["container"]["docker"]["parameters"].pop(2), "/data is not writable"),
        (lambda g: g["apps"].remove(app(g, "calculator-v2")), "no app /meshcalc/calculator-v2"),
    ],
)
def test_k8s_match_check_catches(group, break_it, expected):
    broken = copy.deepcopy(group)
    break_it(broken)
    assert any(expected in p for p in checks.k8s_match_problems(broken, checks.k8s_deployments()))


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda g: app(g, "gateway")["env"].update(CALCULATOR_URL="http://calculator.marathon.mesos:8080/calcular"), "names no app"),
        (lambda g: app(g, "gateway")["env"].update(CALCULATOR_URL="http://calculator-v1-meshcalc.marathon.mesos/calcular"), "port None"),
        (lambda g: app(g, "calculator-v1")["env"].update(OTEL_EXPORTER_OTLP_ENDPOINT="http://jaeger-meshcalc.marathon.mesos:4317"), "port 4317"),
    ],
)
def test_discovery_check_catches(group, break_it, expected):
    broken = copy.deepcopy(group)
    break_it(broken)
    assert any(expected in p for p in checks.discovery_problems(broken))
