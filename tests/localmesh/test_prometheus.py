"""The local Prometheus: labels as on a cluster, and the dashboard's queries answered."""

import json
import re
import threading
import urllib.parse
from pathlib import Path

import pytest

from localmesh.mesh import Mesh, MeshOptions
from localmesh.processes import free_port, wait_until
from localmesh.prometheus import SLO_RULES, Target, prometheus_binary, scrape_config
from tests.support import get, post_json
from tests.tools import APT, require

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "meshcalc.json"
# Series made by Istio's own telemetry filter in a cluster's sidecars; no
# Envoy outside Istio emits them, so the local mesh cannot answer these panels
# (only the ingress's requests to the gateway are reported under Istio's names).
CLUSTER_ONLY_METRICS = re.compile(r"\bistio_\w+")


def test_scrape_config_labels_apps_and_sidecars_like_their_pod():
    pod = {"namespace": "meshcalc", "app": "gateway", "version": "v1", "pod": "gateway-0"}
    config = scrape_config(
        [Target("127.0.0.1:1", pod)],
        [Target("127.0.0.1:2", pod)],
        Target("127.0.0.1:3", {"namespace": "istio-system", "app": "istio-ingressgateway"}),
        interval="1s",
    )
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["kubernetes-pods"]["metrics_path"] == "/metrics"
    assert jobs["envoy-sidecars"]["metrics_path"] == "/stats/prometheus"
    assert jobs["envoy-sidecars"]["static_configs"][0]["labels"] == pod
    assert jobs["istio-ingressgateway"]["static_configs"][0]["targets"] == ["127.0.0.1:3"]
    assert config["global"]["scrape_interval"] == "1s"


def test_scrape_config_loads_the_rules_and_sends_alerts_to_alertmanager():
    config = scrape_config([], [], None, rule_files=[SLO_RULES], alertmanager="127.0.0.1:9")
    assert config["rule_files"] == [str(SLO_RULES)]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9"]
    assert "alerting" not in scrape_config([], [], None)


def test_the_ingress_upstream_counters_are_reported_as_istio_ingress_gateway_metrics():
    """The relabelling is checked by the real Prometheus in tests/localmesh/test_slo_alerts.py; here,
    that it renames only the ingress's per-code and latency counters of an outbound cluster."""
    config = scrape_config([], [], Target("127.0.0.1:3", {"app": "istio-ingressgateway"}))
    relabel = next(j for j in config["scrape_configs"] if j["job_name"] == "istio-ingressgateway")["metric_relabel_configs"]
    renames = {r["regex"].split(";")[0]: r["replacement"] for r in relabel if r["target_label"] == "__name__"}
    assert renames == {
        "envoy_cluster_upstream_rq_(\\d{3})": "istio_requests_total",
        "envoy_cluster_upstream_rq_time_(bucket|sum|count)": "istio_request_duration_milliseconds_$1",
    }
    fixed = {r["target_label"]: r["replacement"] for r in relabel if r["source_labels"] == ["__name__"]}
    assert fixed == {"reporter": "source", "source_workload": "istio-ingressgateway",
                     "source_workload_namespace": "istio-system", "cluster_name": ""}


def dashboard_expressions() -> list[str]:
    def panels(node):
        for panel in node.get("panels", []):
            yield panel
            yield from panels(panel)

    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", []) if t.get("expr")]


def concrete(expression: str) -> str:
    """A dashboard expression with Grafana's variables filled in as a user would see them."""
    result = expression.replace("$__rate_interval", "15s").replace("$namespace", "meshcalc")
    assert "$" not in result, f"a dashboard variable the test does not know: {result}"
    return result


def query(prometheus_url: str, expression: str) -> list:
    status, _, body = get(f"{prometheus_url}/api/v1/query?query={urllib.parse.quote(expression)}")
    assert status == 200, body
    return json.loads(body)["data"]["result"]


@pytest.fixture(scope="module")
def mesh_with_prometheus(tmp_path_factory):
    require("prometheus", prometheus_binary(), APT.format("prometheus"))
    options = MeshOptions(
        root=ROOT,
        run_dir=tmp_path_factory.mktemp("mesh-prometheus"),
        ingress_port=free_port(),
        common_env={"SHUTDOWN_DRAIN_SECONDS": "0"},
        # A replica failing now and then, so the retry and error panels have something to show.
        pod_env={"calculator-v1-1": {"FAULT_FAILURE_RATE": "0.2"}},
        prometheus_port=free_port(),
        scrape_interval="1s",
    )
    mesh = Mesh(options)
    mesh.start()
    yield mesh
    mesh.stop()


@pytest.mark.processes
def test_every_dashboard_query_returns_data_after_traffic(mesh_with_prometheus):
    mesh = mesh_with_prometheus
    prometheus = mesh.prometheus.url
    expressions = [concrete(e) for e in dashboard_expressions()]
    local = [e for e in expressions if not CLUSTER_ONLY_METRICS.search(e)]
    assert len(local) >= 10, "the dashboard lost its panels?"

    stop = threading.Event()

    def traffic():
        body = {"operacion": "dividir", "numero1": 7, "numero2": 2}
        for n in range(3000):  # bounded: about a minute at most
            if stop.is_set():
                return
            post_json(f"{mesh.ingress_url}/calcular", body, {"x-canary": "always"} if n % 10 == 0 else None)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    waiting = set(local)

    def all_answered():
        waiting.difference_update([e for e in list(waiting) if query(prometheus, e)])
        return not waiting

    try:
        wait_until(all_answered, 60, interval=1.0, what="data for every dashboard query")
    except TimeoutError:
        pytest.fail("no data for:\n" + "\n".join(sorted(waiting)))
    finally:
        stop.set()
        sender.join(30)

    exemplars = get(
        f"{prometheus}/api/v1/query_exemplars?query="
        + urllib.parse.quote('http_server_request_duration_seconds_bucket{app="calculator"}')
        + "&start=0&end=9999999999"
    )
    found = json.loads(exemplars[2])["data"]
    assert found and len(found[0]["exemplars"][0]["labels"]["trace_id"]) == 32


def test_the_cluster_only_filter_catches_istio_series():
    assert CLUSTER_ONLY_METRICS.search('sum(rate(istio_requests_total{reporter="source"}[1m]))')
    assert not CLUSTER_ONLY_METRICS.search("sum(rate(envoy_cluster_upstream_rq_retry[1m]))")
