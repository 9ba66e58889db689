"""compose.yaml and compose/: valid Compose, real references, the policy of istio/, the dashboard's wiring.

Each check runs on the repository's files and on a copy broken in one place, which it must catch.
"""

from __future__ import annotations

import copy
import shutil
import subprocess

import pytest
import yaml

from tests.platforms import compose_checks as checks
from tests.tools import FROM_THE_VENV, PROMTOOL, executable, needs, needs_promtool

pytestmark = needs("podman-compose", executable(checks.PODMAN_COMPOSE), f"the wheel podman-compose: {FROM_THE_VENV}")


@pytest.fixture(scope="module")
def compose():
    """podman-compose's normalised model of compose.yaml."""
    return checks.podman_compose_config(checks.COMPOSE_FILE)


@pytest.fixture(scope="module")
def envoy():
    return checks.load_yaml(checks.ENVOY_CONFIG)


def service(document, name):
    return document["services"][name]


# -- the Compose Specification ---------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification():
    assert checks.schema_problems(checks.load_yaml(checks.COMPOSE_FILE)) == []


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d["services"]["gateway"].update(restart_policy="always"),
        lambda d: d["services"]["envoy"].update(healthcheck={"test": ["CMD"], "intervall": "10s"}),
        lambda d: d["services"]["envoy"]["depends_on"]["gateway"].update(condition="service_ready"),
        lambda d: d["services"]["calculator-v1"].update(cap_drop="ALL"),
    ],
    ids=["unknown-key", "healthcheck-typo", "depends-on-condition", "cap-drop-type"],
)
def test_schema_catches_an_invalid_file(break_it):
    document = checks.load_yaml(checks.COMPOSE_FILE)
    break_it(document)
    assert checks.schema_problems(document)


def test_podman_compose_parses_it(compose):
    assert set(compose["services"]) >= {"calculator-v1", "calculator-v2", "gateway", "envoy", "prometheus", "grafana", "jaeger"}


def test_podman_compose_rejects_an_undeclared_volume(tmp_path):
    document = checks.load_yaml(checks.COMPOSE_FILE)
    del document["volumes"]["calculator-v2-data"]
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(document))
    with pytest.raises(checks.ComposeParseError, match="calculator-v2-data"):
        checks.podman_compose_config(broken)


# -- every service ---------------------------------------------------------------------------------


def test_every_service_is_built_or_pinned_restarts_checks_health_and_runs_least_privileged(compose):
    assert checks.service_problems(compose, checks.ROOT) == []


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda d: service(d, "jaeger").pop("healthcheck"), "services.jaeger.healthcheck: none"),
        (lambda d: service(d, "prometheus").pop("restart"), "services.prometheus.restart"),
        (lambda d: service(d, "grafana").update(image="grafana/grafana:latest"), "not pinned"),
        (lambda d: service(d, "grafana").update(image="grafana/grafana"), "not pinned"),
        (lambda d: service(d, "gateway").pop("image") and service(d, "gateway").pop("build"), "neither image nor build"),
        (lambda d: service(d, "gateway").update(build={"context": "nowhere"}), "services.gateway.build: no"),
        (lambda d: service(d, "envoy")["volumes"][0].update(source="./compose/envoy/missing.yaml"), "missing.yaml does not exist"),
        (lambda d: service(d, "envoy")["volumes"][0].update(read_only=False), "mounted writable"),
        (lambda d: service(d, "envoy").update(ports=["8080:8080"]), "not bound to 127.0.0.1"),
        (lambda d: service(d, "envoy").update(user="0:0"), "services.envoy.user"),
        (lambda d: service(d, "jaeger").pop("user"), "services.jaeger.user"),
        (lambda d: service(d, "calculator-v2").update(read_only=False), "services.calculator-v2.read_only"),
        (lambda d: service(d, "calculator-v2").update(cap_drop=["NET_RAW"]), "does not drop ALL"),
        (lambda d: service(d, "calculator-v2").update(security_opt=[]), "no-new-privileges"),
        (lambda d: service(d, "calculator-v2")["volumes"].pop(0), "no tmpfs on /tmp"),
        (lambda d: service(d, "envoy")["depends_on"].update(calculator={"condition": "service_healthy"}), "no service calculator"),
    ],
)
def test_service_checks_catch(compose, break_it, expected):
    broken = copy.deepcopy(compose)
    break_it(broken)
    assert any(expected in problem for problem in checks.service_problems(broken, checks.ROOT))


def test_our_services_run_as_the_k8s_deployments_do(compose):
    assert checks.our_service_problems(compose, checks.k8s_deployments()) == []


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda d: service(d, "calculator-v1")["deploy"].update(replicas=1), "1 replica(s), the Deployment has 2"),
        (lambda d: service(d, "calculator-v2")["environment"].update(CALCULATOR_VERSION="v1"), "CALCULATOR_VERSION='v1'"),
        (lambda d: service(d, "gateway")["environment"].update(OTEL_EXPORTER_OTLP_ENDPOINT="http://jaeger:4317"), "OTEL_EXPORTER_OTLP_ENDPOINT"),
        (lambda d: service(d, "gateway").update(command=["flask", "run"]), "not gunicorn"),
        (lambda d: service(d, "gateway").update(user="10001"), "not the image's 10001:0"),
        (lambda d: service(d, "calculator-v1")["volumes"].pop(1), "nothing mounted on /data"),
        (lambda d: service(d, "calculator-v1").update(stop_grace_period="10s"), "stop_grace_period"),
        (lambda d: d["services"].pop("calculator-v2"), "no calculator-v2, which k8s/base deploys"),
        (lambda d: d["services"].pop("jaeger"), "jaeger, which is no service"),
    ],
)
def test_our_service_checks_catch(compose, break_it, expected):
    broken = copy.deepcopy(compose)
    break_it(broken)
    assert any(expected in problem for problem in checks.our_service_problems(broken, checks.k8s_deployments()))


# -- Envoy, the mesh ---------------------------------------------------------------------------------


def test_envoy_accepts_its_config():
    result = checks.envoy_validate(checks.ENVOY_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    # A deprecated field works today and fails on a later Envoy: none.
    assert "Deprecated field" not in result.stdout + result.stderr


def test_envoy_validation_catches_a_route_to_no_cluster(tmp_path, envoy):
    broken = copy.deepcopy(envoy)
    broken["static_resources"]["clusters"] = [
        c for c in broken["static_resources"]["clusters"] if "|v2|" not in c["name"]
    ]
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = checks.envoy_validate(path)
    assert result.returncode != 0
    assert "outbound|80|v2|calculator" in result.stdout + result.stderr


def test_envoy_applies_the_policy_of_istio(envoy):
    assert checks.envoy_mirror_problems(envoy, checks.istio_documents()) == []


def test_envoy_applies_the_ingress_policy_of_istio_ingress(envoy):
    assert checks.envoy_edge_problems(envoy) == []


@pytest.mark.parametrize(
    "break_it, expected",
    [
        (lambda hcm: hcm.update(request_timeout="60s"), "ingress request_timeout"),
        (lambda hcm: hcm["http_filters"].pop(1), "ingress http_filters"),
        (lambda hcm: hcm["http_filters"][0]["typed_config"]["rules"]["policies"].popitem()[1]["permissions"].append(
            {"any": True}), "ingress filter envoy.filters.http.rbac"),
        (lambda hcm: hcm["local_reply_config"]["mappers"].pop(), "ingress local_reply_config"),
    ],
    ids=["timeout", "buffer", "rbac", "reply"],
)
def test_the_ingress_check_catches(envoy, break_it, expected):
    broken = copy.deepcopy(envoy)
    (listener,) = [l for l in broken["static_resources"]["listeners"] if l["name"] == "ingress_8080"]
    break_it(listener["filter_chains"][0]["filters"][0]["typed_config"])
    assert any(expected in problem for problem in checks.envoy_edge_problems(broken))


def _route(document, name):
    return checks.envoy_routes(document)[name]


def _cluster(document, name, host="calculator"):
    return checks.envoy_clusters(document)[checks.cluster_name(host, name)]


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda d: _route(d, "canary-split")["route"]["weighted_clusters"]["clusters"][0].update(weight=80), "clusters and weights"),
        (lambda d: _route(d, "canary-header")["match"]["headers"][0].update(string_match={"exact": "yes"}), "no match on header x-canary"),
        (lambda d: _route(d, "canary-header")["route"].update(cluster=checks.cluster_name("calculator", "v1")), "clusters and weights"),
        (lambda d: _route(d, "canary-split")["route"].update(timeout="15s"), "timeout 15s"),
        (lambda d: _route(d, "canary-split")["route"]["retry_policy"].update(num_retries=5), "5 retries"),
        (lambda d: _route(d, "canary-header")["route"]["retry_policy"].update(retry_on="connect-failure"), "retry_on"),
        (lambda d: _route(d, "canary-header")["route"]["retry_policy"].update(per_try_timeout="2s"), "per_try_timeout"),
        (lambda d: _route(d, "gateway")["route"].update(timeout="3s"), "envoy route gateway: timeout"),
        (lambda d: checks.envoy_routes(d)["canary-header"].update(name="renamed"), "canary-header: missing"),
        (lambda d: _cluster(d, "v1")["circuit_breakers"]["thresholds"][0].update(max_pending_requests=1024), "max_pending_requests"),
        (lambda d: _cluster(d, "v2")["outlier_detection"].update(max_ejection_percent=10), "max_ejection_percent"),
        (lambda d: _cluster(d, "v2")["outlier_detection"].pop("consecutive_5xx"), "consecutive_5xx"),
        (lambda d: _cluster(d, "v1").update(connect_timeout="10s"), "connect_timeout"),
        (lambda d: _cluster(d, "", "gateway")["circuit_breakers"]["thresholds"][0].update(max_pending_requests=32), "gateway.meshcalc.svc.cluster.local: circuit breaker max_pending_requests"),
        (lambda d: _cluster(d, "", "gateway")["outlier_detection"].update(enforcing_consecutive_5xx=100), "enforcing_consecutive_5xx 100"),
        (lambda d: _cluster(d, "", "gateway")["outlier_detection"].pop("split_external_local_origin_errors"), "split_external_local_origin_errors"),
        (lambda d: _cluster(d, "", "gateway")["outlier_detection"].update(consecutive_local_origin_failure=5), "consecutive_local_origin_failure 5"),
        (lambda d: _cluster(d, "v1")["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["common_http_protocol_options"].update(idle_timeout="90s"), "idle_timeout"),
    ],
)
def test_mirror_check_catches_drift_from_istio(envoy, break_it, expected):
    # yaml aliases share objects: a deep copy per case, so one edit breaks one place.
    broken = yaml.safe_load(yaml.safe_dump(envoy))
    break_it(broken)
    assert any(expected in problem for problem in checks.envoy_mirror_problems(broken, checks.istio_documents()))


def test_envoy_reaches_the_compose_services_and_they_reach_it(envoy, compose):
    assert checks.envoy_upstream_problems(envoy, compose) == []


@pytest.mark.parametrize(
    ("break_it", "target", "expected"),
    [
        (lambda e, c: _cluster(e, "v1")["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"].update(address="calculator"), "envoy", "calculator is no Compose service"),
        (lambda e, c: _cluster(e, "v2")["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"].update(port_value=5000), "envoy", "port 5000"),
        (lambda e, c: service(c, "envoy").update(ports=["127.0.0.1:8080:9999"]), "compose", "reaches no listener"),
        (lambda e, c: service(c, "gateway")["environment"].update(HTTP_PROXY="http://envoy:15002"), "compose", "HTTP_PROXY"),
    ],
)
def test_upstream_check_catches(envoy, compose, break_it, target, expected):
    broken_envoy, broken_compose = yaml.safe_load(yaml.safe_dump(envoy)), copy.deepcopy(compose)
    break_it(broken_envoy, broken_compose)
    assert any(expected in p for p in checks.envoy_upstream_problems(broken_envoy, broken_compose))


# -- Prometheus and Grafana --------------------------------------------------------------------------


@needs_promtool
def test_promtool_accepts_the_prometheus_config(tmp_path):
    result = subprocess.run([str(PROMTOOL), "check", "config", str(checks.PROMETHEUS_CONFIG)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = checks.load_yaml(checks.PROMETHEUS_CONFIG)
    broken["scrape_configs"][0]["dns_sd_configs"][0]["type"] = "AAAAA"
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(broken))
    assert subprocess.run([str(PROMTOOL), "check", "config", str(path)], capture_output=True).returncode != 0


def test_prometheus_scrapes_every_service_and_envoy_with_the_dashboards_labels(compose, envoy):
    assert checks.prometheus_problems(checks.load_yaml(checks.PROMETHEUS_CONFIG), compose, envoy) == []


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda p, c: p.update(scrape_configs=[j for j in p["scrape_configs"] if j["job_name"] != "gateway"]), "nothing scrapes gateway:8080"),
        (lambda p, c: p["scrape_configs"][1]["relabel_configs"][2].update(replacement="v1"), "label version='v1'"),
        (lambda p, c: p["scrape_configs"][0].update(relabel_configs=[]), "label namespace=None"),
        (lambda p, c: p["scrape_configs"][-1]["static_configs"][0].update(targets=["envoy:9901"]), "not Envoy's stats listener"),
        (lambda p, c: p.update(scrape_configs=[j for j in p["scrape_configs"] if j["job_name"] != "envoy"]), "Envoy's stats are not scraped"),
        (lambda p, c: service(c, "prometheus").update(command=["--config.file=/etc/prometheus/prometheus.yml"]), "exemplar storage"),
    ],
)
def test_prometheus_check_catches(compose, envoy, break_it, expected):
    broken_prometheus, broken_compose = checks.load_yaml(checks.PROMETHEUS_CONFIG), copy.deepcopy(compose)
    break_it(broken_prometheus, broken_compose)
    assert any(expected in p for p in checks.prometheus_problems(broken_prometheus, broken_compose, envoy))


def test_grafana_gets_the_dashboard_and_the_data_sources_it_names(compose):
    assert checks.grafana_problems(compose, checks.ROOT) == []


def _copy_tree(tmp_path):
    """compose/ and dashboards/ in tmp_path, to break a provisioning file."""
    for directory in ("compose", "dashboards"):
        shutil.copytree(checks.ROOT / directory, tmp_path / directory)
    return tmp_path


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda root: _edit(root / "compose/grafana/provisioning/datasources/meshcalc.yaml", "uid: meshcalc-prometheus", "uid: prometheus"), "data source uid meshcalc-prometheus is not provisioned"),
        (lambda root: _edit(root / "compose/grafana/provisioning/datasources/meshcalc.yaml", "datasourceUid: meshcalc-jaeger", "datasourceUid: tempo"), "exemplars link to tempo"),
        (lambda root: _edit(root / "compose/grafana/provisioning/datasources/meshcalc.yaml", "http://prometheus:9090", "http://localhost:9090"), "is no Compose service"),
        (lambda root: _edit(root / "compose/grafana/provisioning/dashboards/meshcalc.yaml", "/etc/grafana/dashboards/meshcalc", "/var/lib/grafana/dashboards"), "no dashboard at"),
    ],
)
def test_grafana_check_catches(tmp_path, compose, break_it, expected):
    root = _copy_tree(tmp_path)
    break_it(root)
    assert any(expected in p for p in checks.grafana_problems(compose, root))


def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
