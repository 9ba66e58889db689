"""No 503 UC after idle gaps longer than gunicorn's keep-alive.

A 503 UC is Envoy sending a request on an upstream connection the app is closing at that moment.
It cannot happen when Envoy always closes an idle connection first: its idleTimeout (each
DestinationRule's connectionPool.http.idleTimeout, 30 s) below the app's keep-alive
(KEEPALIVE_SECONDS, 75 s). Two tests:

- the manifests: every Service Envoy calls has a DestinationRule whose idleTimeout is below the
  keep-alive of every Deployment behind it (without one, Envoy keeps idle connections 1 h);
- the mesh, scaled: the same order with both values divided by 75 (1 s keep-alive, 0.4 s idle),
  so that gaps longer than the keep-alive take seconds, not minutes. Bursts of requests with
  such gaps: no UC anywhere, every connection closed by Envoy's idle timer, none by the app. A
  control run with the order reversed shows the app closing connections first, so the counters
  used would see the race's precondition.
"""

from __future__ import annotations

import random
import time

import pytest
import yaml

from localmesh.observe import flags_of
from manifestcheck.resilience import parse_duration
from tests.reliability.support import Load, istio_document, manifests_copy, record, sized, write_scenario
from tests.support import ROOT, running_mesh, statuses

PROXIES = ("ingress", "gateway-0-sidecar", "gateway-1-sidecar")
REAL_KEEPALIVE = 75.0
SCALE = 1 / 75  # 75 s -> 1 s, 30 s -> 0.4 s


def keepalive_of(deployment: dict) -> float:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    return float(env.get("KEEPALIVE_SECONDS", REAL_KEEPALIVE))  # servicekit/gunicorn_conf.py's default


def test_every_service_envoy_calls_closes_idle_connections_before_the_app():
    deployments = [yaml.safe_load(p.read_text()) for p in (ROOT / "k8s" / "base").glob("*-deployment.yaml")]
    rules = {
        d["spec"]["host"]: d
        for p in (ROOT / "istio").glob("*destinationrule.yaml")
        for d in [yaml.safe_load(p.read_text())]
    }
    checked = {}
    for service in (ROOT / "k8s" / "base").glob("*-service.yaml"):
        document = yaml.safe_load(service.read_text())
        name, selector = document["metadata"]["name"], document["spec"]["selector"]
        behind = [d for d in deployments if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert name in rules, f"Service {name}: no DestinationRule, so Envoy keeps idle connections 1 h"
        idle = parse_duration(rules[name]["spec"]["trafficPolicy"]["connectionPool"]["http"]["idleTimeout"])
        keepalive = min(keepalive_of(d) for d in behind)
        assert idle < keepalive, (name, idle, keepalive)
        checked[name] = (idle, keepalive)
    assert set(checked) == {"calculator", "gateway"}


def scaled_rules(idle_seconds: float) -> list[dict]:
    """The two DestinationRules of istio/ with only their idleTimeout changed."""
    documents = []
    for name in ("calculator-destinationrule.yaml", "gateway-destinationrule.yaml"):
        document = istio_document(name)
        document["spec"]["trafficPolicy"]["connectionPool"]["http"]["idleTimeout"] = f"{int(idle_seconds * 1000)}ms"
        documents.append(document)
    return documents


def cluster_counters(mesh, names: tuple[str, ...]) -> dict[str, int]:
    totals = dict.fromkeys(names, 0)
    for proxy in PROXIES:
        for key, value in mesh.envoys[proxy].stats("cluster.outbound|80|").items():
            for name in names:
                if key.endswith(f".{name}"):
                    totals[name] += value
    return totals


COUNTERS = ("upstream_cx_idle_timeout", "upstream_cx_destroy_remote", "upstream_cx_destroy_remote_with_active_rq")


def bursts(mesh, count: int, size: int, gap: tuple[float, float], seed: int) -> tuple[list, list[float]]:
    """``count`` bursts of ``size`` requests, each after an idle gap drawn from ``gap`` (a deliberate wait)."""
    rng = random.Random(seed)
    results, gaps = [], []
    for index in range(count):
        results += Load(mesh.ingress_url, count=size, seconds=120, concurrency=8, first_id=index * size + 1).run()
        pause = rng.uniform(*gap)
        gaps.append(pause)
        time.sleep(pause)  # the idle gap itself is what is measured
    return results, gaps


def uc_entries(mesh) -> list[dict]:
    from tests.localmesh.e2e.support import access_log

    return [e for proxy in PROXIES for e in access_log(mesh, proxy) if "UC" in flags_of(e)]


@pytest.mark.processes
def test_no_503_uc_after_idle_gaps_longer_than_the_keep_alive(tmp_path):
    keepalive = REAL_KEEPALIVE * SCALE
    idle = 30 * SCALE
    root = manifests_copy(tmp_path / "manifests")
    write_scenario(root, "keepalive-scaled", scaled_rules(idle))
    write_scenario(root, "keepalive-reversed", scaled_rules(keepalive * 3))
    env = {"KEEPALIVE_SECONDS": f"{keepalive:g}"}
    # gunicorn checks keep-alive once a second: it closes between 1 and 2 s idle; the gaps exceed that.
    gap = (keepalive + 1.1, keepalive + 1.6)
    count, size = sized((6, 100), (50, 2_000))

    with running_mesh(tmp_path / "run", root=root, policy=("keepalive-scaled",), common_env=env) as mesh:
        results, gaps = bursts(mesh, count, size, gap, seed=1)
        counters = cluster_counters(mesh, COUNTERS)
        uc = uc_entries(mesh)
    with running_mesh(tmp_path / "control", root=root, policy=("keepalive-reversed",), common_env=env) as mesh:
        control_results, _ = bursts(mesh, 3, 50, gap, seed=2)
        control = cluster_counters(mesh, COUNTERS)

    record(
        "keepalive",
        scaled_keepalive_s=keepalive,
        scaled_idle_timeout_s=idle,
        requests=len(results),
        bursts=count,
        gaps_s=f"{min(gaps):.2f}-{max(gaps):.2f}",
        statuses=dict(statuses(results)),
        uc=len(uc),
        envoy_closed_idle=counters["upstream_cx_idle_timeout"],
        app_closed=counters["upstream_cx_destroy_remote"],
        control_app_closed=control["upstream_cx_destroy_remote"],
        control_statuses=dict(statuses(control_results)),
    )
    assert len(results) == count * size
    assert statuses(results) == {200: len(results)}
    assert uc == []
    # The order held on every upstream connection: Envoy closed idle ones, the apps closed none.
    assert counters["upstream_cx_idle_timeout"] >= count
    assert counters["upstream_cx_destroy_remote"] == 0
    # Reversed, the apps close first: what the counters would show if the order broke.
    assert control["upstream_cx_destroy_remote"] > 0
