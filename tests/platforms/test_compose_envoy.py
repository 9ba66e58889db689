"""compose/envoy/envoy.yaml, run: the real Envoy in front of real gunicorn processes on 127.0.0.1.

Only the addresses change (Compose service names become 127.0.0.1 and ephemeral
ports); routes, retries, health checks, outlier detection and stats tags are the
file's own. One v1 replica always fails (FAULT_FAILURE_RATE=1), so the retries
and the ejection have something to do.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.platforms import compose_checks as checks
from tests.tools import ENVOY_INSTALL, executable, needs

pytestmark = [pytest.mark.processes, needs("envoy", executable(checks.ENVOY), ENVOY_INSTALL)]

GUNICORN = Path(sys.executable).parent / "gunicorn"
CALCULATOR_APP = "calculator.app:create_app()"
GATEWAY_APP = "gateway.app:create_app()"
DEADLINE_SECONDS = 30
SAMPLE = {"operacion": "dividir", "numero1": 7, "numero2": 2}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, what: str, deadline_seconds: float = DEADLINE_SECONDS):
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)  # between polls of the condition, bounded by the deadline
    pytest.fail(f"timed out waiting for {what}")


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.read().decode()


def post(port: int, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        # bytes: sent with the headers in one write (no Nagle/delayed-ACK stall).
        connection.request("POST", "/calcular", json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def local_envoy_config(upstreams: dict[str, list[int]], listener_ports: dict[str, int], admin_port: int) -> dict:
    """The Compose Envoy config with every address on 127.0.0.1."""
    config = yaml.safe_load(checks.ENVOY_CONFIG.read_text())
    original_admin_port = config["admin"]["address"]["socket_address"]["port_value"]
    config["admin"]["address"]["socket_address"]["port_value"] = admin_port
    for listener in config["static_resources"]["listeners"]:
        address = listener["address"]["socket_address"]
        address.update(address="127.0.0.1", port_value=listener_ports[listener["name"]])
    for cluster in config["static_resources"]["clusters"]:
        endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        host = endpoints[0]["endpoint"]["address"]["socket_address"]["address"]
        if host in upstreams:
            # Compose's DNS names become loopback ports: a STATIC cluster of them. (Kept as a DNS
            # cluster, Envoy 1.40 sent every request of a run to the first of two 127.0.0.1
            # endpoints, both healthy: no test of retries or ejection could run.)
            cluster.pop("cluster_type", None)
            cluster["type"] = "STATIC"
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"] = [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
                for port in upstreams[host]
            ]
        for endpoint in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]:
            address = endpoint["endpoint"]["address"]["socket_address"]
            if address["port_value"] == original_admin_port:
                address["port_value"] = admin_port  # the stats listener's way to the admin API
    return config


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    work = tmp_path_factory.mktemp("compose-envoy")
    processes: list[subprocess.Popen] = []
    listener_ports = {name: free_port() for name in ("ingress_8080", "outbound_http_proxy", "prometheus_stats")}
    admin_port = free_port()
    ports = {"calculator-v1": [free_port(), free_port()], "calculator-v2": [free_port()], "gateway": [free_port()]}

    def start(name: str, app: str, port: int, env: dict[str, str]) -> None:
        environment = {
            **os.environ,
            "BIND": f"127.0.0.1:{port}",
            "DATA_DIR": str(work / name),
            "TELEMETRY_ENABLED": "false",
            "SHUTDOWN_DRAIN_SECONDS": "0",
            **env,
        }
        environment.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        (work / name).mkdir()
        log = open(work / f"{name}.log", "w")
        processes.append(subprocess.Popen([str(GUNICORN), "-c", "python:servicekit.gunicorn_conf", app], env=environment, stdout=log, stderr=subprocess.STDOUT))

    try:
        start("v1-healthy", CALCULATOR_APP, ports["calculator-v1"][0], {"CALCULATOR_VERSION": "v1"})
        start("v1-failing", CALCULATOR_APP, ports["calculator-v1"][1], {"CALCULATOR_VERSION": "v1", "FAULT_FAILURE_RATE": "1"})
        start("v2", CALCULATOR_APP, ports["calculator-v2"][0], {"CALCULATOR_VERSION": "v2"})
        start(
            "gateway",
            GATEWAY_APP,
            ports["gateway"][0],
            {"CALCULATOR_URL": "http://calculator/calcular", "HTTP_PROXY": f"http://127.0.0.1:{listener_ports['outbound_http_proxy']}", "NO_PROXY": ""},
        )
        config = work / "envoy.json"
        config.write_text(json.dumps(local_envoy_config(ports, listener_ports, admin_port)))
        log = open(work / "envoy.log", "w")
        processes.append(
            subprocess.Popen([str(checks.ENVOY), "-c", str(config), "--log-level", "warn", "--disable-hot-restart"], stdout=log, stderr=subprocess.STDOUT)
        )
        admin = f"http://127.0.0.1:{admin_port}"

        def all_hosts_healthy() -> bool:
            try:
                flags = [line for line in get(f"{admin}/clusters").splitlines() if "outbound|" in line and "::health_flags::" in line]
            except OSError:
                return False
            return len(flags) == 4 and all(line.endswith("::healthy") for line in flags)

        def apps_ready() -> bool:
            for port in [p for group in ports.values() for p in group]:
                try:
                    if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status != 200:
                        return False
                except OSError:
                    return False
            return True

        wait_until(apps_ready, "every app ready")
        wait_until(all_hosts_healthy, "every upstream to pass Envoy's /readyz health check")
        yield {"ingress": listener_ports["ingress_8080"], "stats": listener_ports["prometheus_stats"], "admin": admin}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stat(mesh, name: str) -> int:
    match = re.search(rf"^{re.escape(name)}: (\d+)$", get(f"{mesh['admin']}/stats?filter={re.escape(name)}"), re.MULTILINE)
    return int(match.group(1)) if match else 0


def test_ingress_reaches_the_calculator_through_the_gateway(mesh):
    # v2 (the header route): its only replica is sound; v1's failing one is for the test below.
    status, body = post(mesh["ingress"], SAMPLE, {"x-canary": "always"})
    assert status == 200, body
    assert body["resultado"] == 3


def test_canary_header_always_reaches_v2(mesh):
    versions = {post(mesh["ingress"], SAMPLE, {"x-canary": "always"})[1]["version"] for _ in range(10)}
    assert versions == {"v2"}


def test_split_sends_about_a_tenth_to_v2_and_retries_and_ejection_hide_the_failing_replica(mesh):
    # Four clients at once, as a demo's load would be. (With an active health check on the
    # calculator clusters, LEAST_REQUEST sent every v1 request of a run to one replica,
    # healthy or failing, retries included: compose/envoy/envoy.yaml has none since.)
    with ThreadPoolExecutor(max_workers=4) as clients:
        results = list(clients.map(lambda _: post(mesh["ingress"], SAMPLE), range(200)))
    successes = [body for status, body in results if status == 200]
    # Half of v1's replicas always fail. Retries and the ejection keep nearly
    # every answer good, not all: until the failing replica is ejected, an attempt
    # and its retries may all land on it, and the client gets 503 (URX).
    assert len(successes) >= 0.9 * len(results), Counter(status for status, _ in results)
    share = Counter(body["version"] for body in successes)["v2"] / len(successes)
    # 10 % nominal; 2..25 % is more than 3 standard deviations either side for 200 draws.
    assert 0.02 <= share <= 0.25, share
    v1 = checks.cluster_name("calculator", "v1")
    # The broken replica's failures are retried, and a retry succeeds: previous_hosts sends it
    # to the other replica. (Once lost when an active health check made LEAST_REQUEST pick one
    # replica for every attempt; compose/envoy/envoy.yaml has had none since.)
    assert stat(mesh, f"cluster.{v1}.upstream_rq_retry") > 0
    assert stat(mesh, f"cluster.{v1}.upstream_rq_retry_success") > 0
    # 3 consecutive 5xx eject the failing replica (max 50 %: one of two).
    assert stat(mesh, f"cluster.{v1}.outlier_detection.ejections_enforced_total") >= 1


def test_stats_listener_serves_the_dashboards_cluster_name_series(mesh):
    post(mesh["ingress"], SAMPLE)
    metrics = get(f"http://127.0.0.1:{mesh['stats']}/stats/prometheus")
    series = re.compile(r'^envoy_cluster_upstream_rq_total\{cluster_name="outbound\|80\|v1\|calculator\.meshcalc\.svc\.cluster\.local"\} (\d+)$', re.MULTILINE)
    match = series.search(metrics)
    assert match and int(match.group(1)) > 0
    # Only the stats: the admin API (which can stop Envoy) stays on its loopback port.
    with pytest.raises(urllib.error.HTTPError):
        get(f"http://127.0.0.1:{mesh['stats']}/quitquitquit")
