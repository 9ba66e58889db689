"""The contract through real processes: client -> gunicorn gateway -> gunicorn calculator."""

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from localmesh.processes import free_port, http_status, wait_until
from tests.calculator.test_api import BAD_BODIES, SEED_CASES
from tests.support import CALCULATOR_APP, GATEWAY_APP, get, post_json

pytestmark = pytest.mark.processes


@pytest.mark.parametrize("body, result, result_hex", SEED_CASES)
def test_seed_cases_through_the_gateway(stack, body, result, result_hex):
    status, headers, payload = post_json(f"{stack['gateway'].url}/calcular", body)
    assert status == 200
    assert payload == {"resultado": result, "resultado_hexa": result_hex, "version": "v1"}
    assert headers["x-calculator-version"] == "v1"


@pytest.mark.parametrize("raw, status, message", BAD_BODIES)
def test_bad_input_errors_pass_through_the_gateway_unchanged(stack, raw, status, message):
    for service in ("gateway", "calculator"):
        got_status, headers, payload = post_json(f"{stack[service].url}/calcular", raw)
        assert (got_status, payload) == (status, {"error": message}), service
        assert headers["content-type"] == "application/json"


def test_gateway_refuses_a_body_not_declared_as_json(stack):
    status, _, payload = post_json(f"{stack['gateway'].url}/calcular", b"{}", {"Content-Type": "text/plain"})
    assert status == 415 and "JSON" in payload["error"]


def test_gateway_serves_the_page_with_a_strict_content_security_policy(stack):
    status, headers, body = get(f"{stack['gateway'].url}/")
    assert status == 200 and b"<form" in body
    assert "default-src 'self'" in headers["content-security-policy"]


def test_oversized_headers_get_a_clean_4xx_not_a_crash(stack):
    status, _, _ = get(f"{stack['gateway'].url}/healthz", headers={"X-Big": "a" * 20_000})
    assert 400 <= status < 500
    assert get(f"{stack['gateway'].url}/healthz")[0] == 200


def test_calculator_unreachable_is_a_503(start_service):
    gateway = start_service("gw-unreachable", GATEWAY_APP, {"CALCULATOR_URL": f"http://127.0.0.1:{free_port()}/calcular"})
    status, _, payload = post_json(f"{gateway.url}/calcular", {"operacion": "sumar", "numero1": 1, "numero2": 1})
    assert status == 503
    assert payload == {"error": "El servicio de cálculo no está disponible"}


def test_calculator_too_slow_is_a_504_within_the_gateway_timeout(start_service):
    slow = start_service("calc-slow", CALCULATOR_APP, {"FAULT_DELAY_SECONDS": "3"})
    gateway = start_service(
        "gw-timeout", GATEWAY_APP, {"CALCULATOR_URL": f"{slow.url}/calcular", "CALCULATOR_TIMEOUT_SECONDS": "0.5"}
    )
    status, _, payload = post_json(f"{gateway.url}/calcular", {"operacion": "sumar", "numero1": 1, "numero2": 1})
    assert status == 504
    assert payload == {"error": "El servicio de cálculo no respondió a tiempo"}


def test_calculator_503_keeps_its_meaning_and_its_fault_label(start_service):
    failing = start_service("calc-failing", CALCULATOR_APP, {"FAULT_FAILURE_RATE": "1"})
    gateway = start_service("gw-failing", GATEWAY_APP, {"CALCULATOR_URL": f"{failing.url}/calcular"})
    status, headers, payload = post_json(f"{gateway.url}/calcular", {"operacion": "sumar", "numero1": 1, "numero2": 1})
    assert status == 503
    assert headers["x-calculator-fault"] == "failure"
    assert payload["estado_upstream"] == 503 and "inyectado" in payload["detalle"]


class _BrokenUpstream(BaseHTTPRequestHandler):
    """Answers 500 with an HTML page, as a misbehaving proxy or app might."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"<html>Internal Server Error</html>"
        self.send_response(500)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_any_other_upstream_failure_is_a_json_502(start_service):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenUpstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gateway = start_service(
            "gw-broken", GATEWAY_APP, {"CALCULATOR_URL": f"http://127.0.0.1:{server.server_address[1]}/calcular"}
        )
        status, headers, payload = post_json(f"{gateway.url}/calcular", {"operacion": "sumar", "numero1": 1, "numero2": 1})
    finally:
        server.shutdown()
        server.server_close()
    assert status == 502
    assert headers["content-type"] == "application/json"
    assert payload["error"] == "El servicio de cálculo respondió con un error"
    assert payload["estado_upstream"] == 500


@pytest.mark.parametrize("app", [CALCULATOR_APP, GATEWAY_APP])
def test_entry_points_start_with_every_setting_at_its_default(app, tmp_path):
    """`gunicorn 'calculator.app:create_app()'`, no config file, no environment."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", app],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: http_status("127.0.0.1", port, "/readyz") == 200, 20, what=app)
        status, _, payload = post_json(
            f"http://127.0.0.1:{port}/calcular", {"operacion": "dividir", "numero1": 7, "numero2": 2}
        )
        if app == CALCULATOR_APP:
            assert (status, payload["resultado"]) == (200, 3)
            assert (tmp_path / "data" / "resultados.txt").read_text() == "Decimal: 3, Hexadecimal: 0x3\n"
        else:  # the default CALCULATOR_URL is the cluster's Service name, absent here
            assert status in (503, 504) and "error" in payload
    finally:
        process.terminate()
        assert process.wait(30) == 0
