"""Malformed HTTP against the ingress Envoy and the apps' gunicorn: oversized request lines and
headers, slow clients (slowloris), truncated bodies. Each gets a clean 4xx (JSON in Spanish when
an app answers) or a closed connection, never a 5xx, and a normal request still succeeds while
the bad ones hold their connections: no worker thread is exhausted."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from pathlib import Path

import pytest

from localmesh.processes import wait_until
from servicekit import errors, gunicorn_worker
from tests.reliability.support import app_5xx, raw_exchange, record, sized, status_of
from tests.support import post_json, running_mesh

pytestmark = pytest.mark.processes

# What gunicorn (servicekit.gunicorn_worker) or the app may say to a malformed request.
SPANISH = {*gunicorn_worker.MESSAGES.values(), *errors.MESSAGES.values(), "El cuerpo no es JSON válido"}
THREADS = 8  # GUNICORN_THREADS
BODY_TIMEOUT = gunicorn_worker.body_timeout({})
CALCULATION = b'{"operacion": "sumar", "numero1": 2, "numero2": 3}'


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    with running_mesh(tmp_path_factory.mktemp("malformed")) as running:
        yield running


def targets(mesh) -> dict[str, int]:
    """The ingress Envoy, and a calculator and a gateway replica reached directly."""
    return {
        "ingress": mesh.plan.ingress,
        "calculator": mesh.services["calculator-v1-0"].spec.port,
        "gateway": mesh.services["gateway-0"].spec.port,
    }


def request(path: str = "/calcular", headers: list[tuple[str, str]] = (), body: bytes = CALCULATION) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: meshcalc", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def assert_clean_refusal(response: bytes, allowed: set[int]) -> int:
    status = status_of(response)
    assert status in allowed, response[:300]
    head, _, body = response.partition(b"\r\n\r\n")
    if b"envoy" not in head.lower():  # an app (gunicorn or Flask) answered: its JSON error
        assert b"application/json" in head.lower(), response[:300]
        assert json.loads(body)["error"] in SPANISH, body
    return status


CONTENT_LENGTH = f"Content-Length: {len(CALCULATION)}".encode()
CASES = {
    # name: (request bytes, statuses a clean refusal may have)
    "request line of 5000 bytes": (request("/calcular?" + "a" * 5000), {400, 414}),
    "header of 9000 bytes": (request(headers=[("X-Big", "b" * 9000)]), {400, 431}),
    "header of 100 KiB": (request(headers=[("X-Huge", "h" * 100_000)]), {400, 431}),
    "70 headers": (request(headers=[(f"X-H{i}", "v") for i in range(70)]), {400, 431}),
    "110 headers": (request(headers=[(f"X-H{i}", "v") for i in range(110)]), {400, 431}),
    "header name with a space": (request(headers=[("Bad Name", "v")]), {400}),
    "NUL in a header value": (request(headers=[("X-Nul", "a\x00b")]), {400}),
    "Content-Length not a number": (request().replace(CONTENT_LENGTH, b"Content-Length: x"), {400}),
    "two Content-Lengths": (request().replace(CONTENT_LENGTH, CONTENT_LENGTH + b"\r\nContent-Length: 5"), {400}),
    "bad chunk size": (
        b"POST /calcular HTTP/1.1\r\nHost: m\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        {400},
    ),
    "not HTTP": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n", {400}),
}


@pytest.mark.parametrize("target", ["ingress", "calculator", "gateway"])
def test_malformed_requests_get_a_clean_4xx(mesh, target):
    port = targets(mesh)[target]
    before = app_5xx(mesh)
    seen = {}
    for name, (data, allowed) in CASES.items():
        response = raw_exchange(port, data, timeout=10)
        if not response:  # closed without an answer: clean too, for bytes that are not HTTP
            assert name == "not HTTP", name
            seen[name] = "closed"
            continue
        seen[name] = assert_clean_refusal(response, allowed)
    record(f"malformed-{target}", statuses=seen)
    assert app_5xx(mesh) == before
    status, _, body = post_json(f"http://127.0.0.1:{port}/calcular", json.loads(CALCULATION))
    assert (status, body["resultado"]) == (200, 5)


def accept_queue(port: int) -> int | None:
    """Connections waiting to be accepted on 127.0.0.1:``port`` (a listening socket's rx_queue in
    /proc/net/tcp); None if nothing listens there."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, state = int(fields[1].split(":")[1], 16), fields[3]
        if state == "0A" and local_port == port:  # 0A: LISTEN
            return int(fields[4].split(":")[1], 16)
    return None


class SlowClients:
    """``count`` connections that each send a request a few bytes at a time, ``interval`` apart
    (slowloris), or the headers and part of the body and then nothing (a stalled upload)."""

    def __init__(self, port: int, count: int, seconds: float, mode: str, interval: float = 0.5):
        self.port, self.count, self.seconds, self.mode, self.interval = port, count, seconds, mode, interval
        self.sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "SlowClients":
        for _ in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            full = request(body=CALCULATION)
            head_end = full.index(b"\r\n\r\n") + 4
            sock.sendall(full[:20] if self.mode == "slowloris" else full[: head_end + 10])
            self.sockets.append(sock)
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        index = 0
        while time.monotonic() < deadline and not self._stop.wait(self.interval):
            if self.mode != "slowloris":
                continue  # a stalled upload sends nothing more
            for sock in self.sockets:
                try:
                    sock.send(f"X-Slow-{index}: 1\r\n".encode())  # never the blank line
                except OSError:
                    pass  # the server closed it: fine
            index += 1

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self.sockets:
            sock.close()


SLOW_CASES = [
    # Headers sent slowly: only through Envoy. gunicorn reached directly gives each such connection
    # a thread once its first byte arrives, with no read timeout while it reads headers, so 8 of
    # them hold a replica's 8 threads (RELIABILITY.md). In the mesh no client reaches gunicorn but
    # through an Envoy (the ingress here; on a cluster the pod's sidecar too, mTLS STRICT), which
    # holds them instead.
    ("slowloris", "ingress"),
    # A body that stops: anywhere. Envoy forwards a body as it comes, so this reaches the apps,
    # whose worker bounds each read of it (servicekit/gunicorn_worker.py).
    ("stalled-upload", "ingress"),
    ("stalled-upload", "calculator"),
    ("stalled-upload", "gateway"),
]


@pytest.mark.parametrize("mode, target", SLOW_CASES)
def test_slow_clients_do_not_exhaust_the_workers(mesh, mode, target):
    port = targets(mesh)[target]
    # More slow connections than the 8 threads of a replica (and than both gateways' 16).
    count = sized(24, 64)
    seconds = sized(8, 30)
    timings = []
    with SlowClients(port, count, seconds, mode):
        # The slow connections first: every one accepted by the server before the normal requests.
        wait_until(lambda: accept_queue(port) == 0, 10, what=f"every slow connection accepted on {port}")
        end = time.monotonic() + seconds - 2
        while time.monotonic() < end:
            started = time.monotonic()
            status, _, body = post_json(f"http://127.0.0.1:{port}/calcular", json.loads(CALCULATION), timeout=30)
            timings.append(time.monotonic() - started)
            assert status == 200 and body["resultado"] == 5, (status, body)
            time.sleep(0.2)  # a normal client's pace, not a load
    worst = max(timings)
    record(f"slow-{mode}-{target}", slow_connections=count, seconds=seconds, normal_requests=len(timings),
           worst_normal_s=round(worst, 3))
    if mode == "slowloris":
        bound = 1.5  # Envoy holds them: the gateways never see them
    elif target == "ingress":
        bound = BODY_TIMEOUT + 1.5  # at worst behind one round of stalled bodies, cut with 408
    else:
        # Straight at one replica, the slow connections queue for its 8 threads, 8 at a time, each
        # cut after one body timeout: bounded, where without the timeout it was for ever.
        bound = math.ceil(count / THREADS) * BODY_TIMEOUT + 1.5
    assert worst < bound, (worst, bound)


def test_a_truncated_body_is_refused_or_dropped_never_a_5xx(mesh):
    before = app_5xx(mesh)
    seen = {}
    for target, port in targets(mesh).items():
        full = request()
        response = raw_exchange(port, full[:-20], timeout=10, shut_write=True)
        status = status_of(response) if response else None
        seen[target] = status or "closed"
        assert status in (None, 400), response[:300]
    record("truncated-body", statuses=seen)
    assert app_5xx(mesh) == before
