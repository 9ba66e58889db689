"""Bodies over MAX_REQUEST_BYTES whatever their framing, Host headers, and doubled slashes, against
the real services (gunicorn with the production config) over raw sockets: gunicorn passes a chunked
body to the app as a stream with no length, which werkzeug cut at the limit and parsed as whole."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from pathlib import Path

import pytest

from calculator.jsondecode import MSG_TOO_DEEP
from servicekit.errors import MESSAGES
from servicekit.inbound import MSG_INVALID_HOST
from tests.support import CALCULATOR_APP, GATEWAY_APP

pytestmark = pytest.mark.processes

LIMIT = 1024  # MAX_REQUEST_BYTES's default


@pytest.fixture(scope="module")
def services(start_service):
    calculator = start_service("limits-calculator", CALCULATOR_APP)
    gateway = start_service("limits-gateway", GATEWAY_APP, {"CALCULATOR_URL": f"{calculator.url}/calcular"})
    return {"calculator": calculator, "gateway": gateway}


def result_lines(services) -> list[str]:
    path = Path(services["calculator"].spec.env["DATA_DIR"]) / "resultados.txt"
    return path.read_text().splitlines() if path.exists() else []


def calculation(number: int, size: int) -> bytes:
    """sumar number + 0 (the results line names the request), padded with spaces to ``size`` bytes."""
    body = json.dumps({"operacion": "sumar", "numero1": number, "numero2": 0}).encode()
    return body + b" " * (size - len(body))


def exchange(port: int, head: str, body_parts: list[bytes] = ()) -> tuple[int, dict, bytes]:
    """Send a request head and then its body parts (from a thread, so that an answer sent before
    the body ends is read as it comes); return the status, headers and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))

        def send_body():
            try:
                for part in body_parts:
                    sock.sendall(part)
            except OSError:
                pass  # the server answered and closed before the end: what a 413 may do

        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        response = http.client.HTTPResponse(sock)
        response.begin()
        data = response.read()
        sender.join(10)
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def chunked(port: int, body: bytes, chunk: int = 100) -> tuple[int, dict, object]:
    """POST /calcular with ``body`` in chunks of ``chunk`` bytes; the answer's body decoded."""
    head = (
        f"POST /calcular HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    parts = [b"%x\r\n%s\r\n" % (len(body[i : i + chunk]), body[i : i + chunk]) for i in range(0, len(body), chunk)]
    status, headers, data = exchange(port, head, [*parts, b"0\r\n\r\n"])
    return status, headers, json.loads(data)


@pytest.mark.parametrize("service", ["calculator", "gateway"])
@pytest.mark.parametrize("size", [60, LIMIT - 1, LIMIT])
def test_a_chunked_body_up_to_the_limit_is_read_whole(services, service, size):
    number = 70_000 + size
    before = result_lines(services)
    status, _, body = chunked(services[service].spec.port, calculation(number, size))
    assert (status, body["resultado"]) == (200, number)
    assert result_lines(services) == [*before, f"Decimal: {number}, Hexadecimal: {hex(number)}"]


@pytest.mark.parametrize("service", ["calculator", "gateway"])
@pytest.mark.parametrize("size, chunk", [(LIMIT + 1, 100), (1074, 100), (1074, 1074), (1 << 20, 8192)])
def test_a_chunked_body_over_the_limit_is_a_413_and_nothing_is_recorded(services, service, size, chunk):
    # 1074 bytes cut at 1024 were a valid calculation: a 200 and a results line, before.
    before = result_lines(services)
    status, headers, body = chunked(services[service].spec.port, calculation(80_000 + size, size), chunk)
    assert (status, body) == (413, {"error": MESSAGES[413]})
    assert headers["content-type"] == "application/json"
    assert result_lines(services) == before


@pytest.mark.parametrize("service", ["calculator", "gateway"])
def test_a_content_length_over_the_limit_is_a_413_and_a_body_with_no_length_is_empty(services, service):
    port = services[service].spec.port
    before = result_lines(services)
    body = calculation(90_000, LIMIT + 1)
    head = f"POST /calcular HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    status, _, answer = exchange(port, head, [body])
    assert (status, json.loads(answer)) == (413, {"error": MESSAGES[413]})
    # No Content-Length and no chunks: gunicorn reads no body, whatever follows the head.
    head = "POST /calcular HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    status, _, answer = exchange(port, head, [calculation(90_001, 100)])
    assert (status, json.loads(answer)) == (400, {"error": "El cuerpo no es JSON válido"})
    assert result_lines(services) == before


@pytest.mark.parametrize("service", ["calculator", "gateway"])
def test_a_body_nested_a_thousand_deep_is_a_400(services, service):
    status, _, body = chunked(services[service].spec.port, b"[" * 1000)
    assert (status, body) == (400, {"error": MSG_TOO_DEEP})


def get(port: int, path: str, host: str) -> tuple[int, dict, bytes]:
    return exchange(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")


@pytest.mark.parametrize("service", ["calculator", "gateway"])
def test_a_host_joined_from_two_is_a_400_and_the_hosts_of_probes_and_scrapes_are_served(services, service):
    port = services[service].spec.port
    for path in ("/healthz", "/calcular", "/no-existe"):
        status, _, body = get(port, path, "a.example,b.example")
        assert (status, json.loads(body)) == (400, {"error": MSG_INVALID_HOST}), path
    # The kubelet and Prometheus name the pod by its IP and port.
    for path in ("/healthz", "/readyz", "/metrics"):
        assert get(port, path, f"127.0.0.1:{port}")[0] == 200, path


@pytest.mark.parametrize("service", ["calculator", "gateway"])
def test_doubled_slashes_are_a_404_not_a_redirect_to_the_host_sent(services, service):
    status, headers, body = get(services[service].spec.port, "/static//app.js", "evil.example")
    assert (status, json.loads(body)) == (404, {"error": MESSAGES[404]})
    assert "location" not in headers
