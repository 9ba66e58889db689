"""Hostile clients through the ingress, each as an attacker tried it on `make up`: slow uploads,
a query of death, bodies over the limit in every framing, the private paths, and the errors the
mesh makes itself. All on real processes, whose Envoy configuration comes from the same istio/
files a cluster gets (istio/ingress/ for the edge)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import yaml

from localmesh.loader import load_kustomization
from localmesh.mesh import INGRESS
from localmesh.observe import ENVOY_TIMER_SLACK_MS, subset_cluster
from localmesh.processes import wait_until
from localmesh.translate.envoy_filters import parse_envoy_filter
from tests.reliability.support import (
    Load,
    app_5xx,
    calculation,
    manifests_copy,
    raw_exchange,
    read_results,
    record,
    sized,
    status_of,
    success_rate,
)
from tests.support import ROOT, running_mesh

pytestmark = pytest.mark.processes

GATEWAY_CLUSTER = "outbound|80||gateway.meshcalc.svc.cluster.local"
SIDECARS = ("gateway-0-sidecar", "gateway-1-sidecar")


def edge_filter():
    """The ingress's EnvoyFilter as the local mesh reads it: its replies, body limit and time bound."""
    (resource,) = [r for r in load_kustomization(ROOT / "istio" / "ingress", ROOT) if r.kind == "EnvoyFilter"]
    return parse_envoy_filter(resource)


EDGE = edge_filter()
MESSAGES, BODY_LIMIT = EDGE.local_replies, EDGE.max_request_bytes


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    with running_mesh(tmp_path_factory.mktemp("hostile")) as running:
        yield running


def ingress_stat(mesh, name: str) -> int:
    return mesh.envoys[INGRESS].stats(name).get(name, 0)


def sidecar_stat(mesh, name: str) -> int:
    return sum(mesh.envoys[sidecar].stats(name).get(name, 0) for sidecar in SIDECARS)


def assert_mesh_error(response: bytes, status: int) -> None:
    """An error the ingress made itself, in the API's shape: JSON ``{"error": <its message>}``."""
    head, _, body = response.partition(b"\r\n\r\n")
    assert status_of(response) == status, response[:300]
    assert b"content-type: application/json" in head.lower(), head
    assert json.loads(body) == {"error": MESSAGES[status]}


# -- slow uploads ------------------------------------------------------------------------------------


class SlowUploads:
    """``count`` connections that each send complete headers announcing a 1,000-byte body, then one
    body byte per second: the attack that held the gateways' connection pool. A connection the
    server closes is opened again, so the attack lasts until the end."""

    HEAD = (
        b"POST /calcular HTTP/1.1\r\nHost: meshcalc\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )

    def __init__(self, port: int, count: int):
        self.port, self.count = port, count
        self.sockets: list[socket.socket | None] = []
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(self.HEAD)
            return sock
        except OSError:
            return None

    def __enter__(self) -> "SlowUploads":
        spacing = min(0.05, 2.0 / self.count)  # 50 ms apart, as found; 200 within 2 s
        for _ in range(self.count):
            self.sockets.append(self._open())
            self._stop.wait(spacing)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for index, sock in enumerate(self.sockets):
                try:
                    if sock is None:
                        raise OSError("not connected")
                    sock.send(b" ")
                except OSError:
                    if sock is not None:
                        sock.close()
                    self.sockets[index] = self._open()
                    self.reopened += 1

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self.sockets:
            if sock is not None:
                sock.close()


def slow_upload_attack(mesh, attackers: int, seconds: float) -> dict:
    """Normal clients (4 x 5 requests/s) through the ingress while ``attackers`` trickle bodies."""
    forwarded_before = ingress_stat(mesh, f"cluster.{GATEWAY_CLUSTER}.upstream_rq_total")
    retried_before = ingress_stat(mesh, f"cluster.{GATEWAY_CLUSTER}.upstream_rq_retry")
    timeouts_before = ingress_stat(mesh, "http.ingressgateway.downstream_rq_timeout")
    with SlowUploads(mesh.plan.ingress, attackers) as attack:
        results = Load(mesh.ingress_url, seconds=seconds, concurrency=4, rate=5, first_id=10**6).run()
        timeouts = ingress_stat(mesh, "http.ingressgateway.downstream_rq_timeout") - timeouts_before
        reopened = attack.reopened
    forwarded = ingress_stat(mesh, f"cluster.{GATEWAY_CLUSTER}.upstream_rq_total") - forwarded_before
    retried = ingress_stat(mesh, f"cluster.{GATEWAY_CLUSTER}.upstream_rq_retry") - retried_before
    return {
        "attackers": attackers,
        "seconds": seconds,
        "normal_requests": len(results),
        "success": round(success_rate(results), 4),
        "statuses": dict(sorted({r.status: sum(x.status == r.status for x in results) for r in results}.items())),
        "forwarded_upstream": forwarded - retried,
        "cut_with_408": timeouts,
        "reopened": reopened,
    }


@pytest.mark.parametrize("attackers", [40, 200])
def test_slow_uploads_do_not_starve_normal_clients(mesh, attackers):
    seconds = sized(13, 40)  # past the ingress's 10 s for a whole request: attackers are cut and come back
    figures = slow_upload_attack(mesh, attackers, seconds)
    record(f"hostile-slow-uploads-{attackers}", **figures)
    assert figures["success"] >= 0.99, figures
    # The ingress forwarded the normal requests and not one slow upload: the bodies it buffers
    # never hold a gateway connection.
    assert figures["forwarded_upstream"] == figures["normal_requests"], figures
    # Each attacker got its bounded time, then 408.
    assert figures["cut_with_408"] >= attackers, figures


def test_without_the_edge_envoyfilter_the_same_attack_takes_the_service_down(tmp_path):
    """The attack test can fail: with istio/ingress's EnvoyFilter removed, 40 slow uploads hold the
    gateway DestinationRule's pool (32 connections, 8 pending) and normal clients get 503s."""
    root = manifests_copy(tmp_path / "repo")
    kustomization = root / "istio" / "ingress" / "kustomization.yaml"
    spec = yaml.safe_load(kustomization.read_text())
    spec["resources"].remove("ingressgateway-envoyfilter.yaml")
    kustomization.write_text(yaml.safe_dump(spec))
    with running_mesh(tmp_path / "run", root=root) as unprotected:
        figures = slow_upload_attack(unprotected, 40, sized(8, 20))
    record("hostile-slow-uploads-40-without-envoyfilter", **figures)
    assert figures["success"] < 0.5, figures


# -- query of death ------------------------------------------------------------------------------------


QUERIES_OF_DEATH = {
    "brackets": b"[" * 1000,
    "objects": b'{"a":' * 200,
    "closed": b"[" * 400 + b"]" * 400,
}


@pytest.mark.parametrize("name", QUERIES_OF_DEATH)
def test_a_query_of_death_is_a_400_and_ejects_nothing(mesh, name):
    body = QUERIES_OF_DEATH[name]
    ejected = "outlier_detection.ejections_enforced_total"
    ejections_before = sum(sidecar_stat(mesh, f"cluster.{subset_cluster(s)}.{ejected}") for s in ("v1", "v2"))
    retries_before = sum(sidecar_stat(mesh, f"cluster.{subset_cluster(s)}.upstream_rq_retry") for s in ("v1", "v2"))
    app_5xx_before = app_5xx(mesh)
    statuses = []
    for _ in range(20):
        head = (
            "POST /calcular HTTP/1.1\r\nHost: meshcalc\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        response = raw_exchange(mesh.plan.ingress, head + body, timeout=10)
        statuses.append(status_of(response))
        assert json.loads(response.partition(b"\r\n\r\n")[2])["error"], response[:300]
    ejections = sum(sidecar_stat(mesh, f"cluster.{subset_cluster(s)}.{ejected}") for s in ("v1", "v2"))
    retries = sum(sidecar_stat(mesh, f"cluster.{subset_cluster(s)}.upstream_rq_retry") for s in ("v1", "v2"))
    record(f"hostile-query-of-death-{name}", statuses=sorted(set(statuses)),
           ejections=ejections - ejections_before, retries=retries - retries_before)
    assert statuses == [400] * 20
    assert app_5xx(mesh) == app_5xx_before
    assert ejections == ejections_before
    assert retries == retries_before


# -- one body limit ------------------------------------------------------------------------------------


def framed(body: bytes, framing: str) -> bytes:
    head = "POST /calcular HTTP/1.1\r\nHost: meshcalc\r\nContent-Type: application/json\r\nConnection: close\r\n"
    if framing == "content-length":
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    chunks = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:500], body[500:]) if part)
    return f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + chunks + b"0\r\n\r\n"


def padded(request_id: int, size: int) -> bytes:
    """A valid calculation of exactly ``size`` bytes: the JSON, then spaces."""
    body = calculation(request_id)
    return body + b" " * (size - len(body))


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_one_body_limit_whatever_the_framing(mesh, framing):
    data_root = mesh.options.run_dir / "data"
    at_limit, over_limit, far_over = 7_000_001, 7_000_002, 7_000_003
    if framing == "chunked":
        at_limit, over_limit, far_over = at_limit + 10, over_limit + 10, far_over + 10
    response = raw_exchange(mesh.plan.ingress, framed(padded(at_limit, BODY_LIMIT), framing), timeout=10)
    assert status_of(response) == 200, response[:300]
    for request_id, size in ((over_limit, BODY_LIMIT + 50), (far_over, 1_000_000)):
        response = raw_exchange(mesh.plan.ingress, framed(padded(request_id, size), framing), timeout=10)
        assert_mesh_error(response, 413)
    wait_until(lambda: read_results(data_root).counts[at_limit] == 1, 5, what="the line of the request at the limit")
    counts = read_results(data_root).counts
    # Never truncated and parsed: no line for a request over the limit.
    assert counts[over_limit] == counts[far_over] == 0


# -- the public surface ----------------------------------------------------------------------------------

PUBLIC = [("GET", "/"), ("HEAD", "/"), ("GET", "/static/app.js"), ("GET", "/openapi.json")]
# What istio/ingress/ingressgateway-authorizationpolicy.yaml keeps private, as a cluster's ingress does.
PRIVATE = [
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/resultados"),
    ("GET", "/calcular"),
    ("DELETE", "/calcular"),
    ("POST", "/otra"),
    ("GET", "/static"),
]


def test_the_ingress_answers_only_the_public_surface(mesh):
    forwarded_before = ingress_stat(mesh, f"cluster.{GATEWAY_CLUSTER}.upstream_rq_total")
    seen = {}
    for method, path in PRIVATE:
        response = raw_exchange(
            mesh.plan.ingress, f"{method} {path} HTTP/1.1\r\nHost: meshcalc\r\nConnection: close\r\n\r\n".encode()
        )
        seen[f"{method} {path}"] = status_of(response)
        assert_mesh_error(response, 403)
    # Refused at the edge: none of them reached a gateway.
    assert ingress_stat(mesh, f"cluster.{GATEWAY_CLUSTER}.upstream_rq_total") == forwarded_before
    for method, path in PUBLIC:
        response = raw_exchange(
            mesh.plan.ingress, f"{method} {path} HTTP/1.1\r\nHost: meshcalc\r\nConnection: close\r\n\r\n".encode()
        )
        seen[f"{method} {path}"] = status_of(response)
        assert status_of(response) == 200, response[:300]
    record("hostile-public-surface", statuses=seen)


# -- errors the mesh makes ---------------------------------------------------------------------------------


MESH_ERRORS = {
    400: b"GET / HTTP/1.1\r\nHost: meshcalc\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    426: b"GET / HTTP/1.0\r\n\r\n",
    431: b"GET / HTTP/1.1\r\nHost: meshcalc\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("status", sorted(MESH_ERRORS))
def test_errors_the_ingress_makes_are_json_in_the_apis_shape(mesh, status):
    assert_mesh_error(raw_exchange(mesh.plan.ingress, MESH_ERRORS[status], timeout=10), status)


def test_a_request_that_never_completes_gets_408_within_the_edges_bound(mesh):
    bound = EDGE.request_timeout_seconds
    started = time.monotonic()
    response = raw_exchange(mesh.plan.ingress, SlowUploads.HEAD, timeout=bound + 5)
    elapsed = time.monotonic() - started
    assert_mesh_error(response, 408)
    assert bound - ENVOY_TIMER_SLACK_MS / 1000 <= elapsed < bound + 2, elapsed

