"""The gateway's HTTP layer through Flask's test client, calling a real calculator process."""

import pytest

from gateway.app import create_app
from gateway.config import GatewaySettings
from servicekit.lifecycle import DrainFlag
from tests.support import CALCULATOR_APP, scrape


@pytest.fixture(scope="module")
def calculator_process(start_service):
    """A real calculator process."""
    return start_service("calc-for-gateway-unit", CALCULATOR_APP)


def gateway_client(calculator_url, environ=None, **settings):
    settings = GatewaySettings(calculator_url=calculator_url, **settings)
    return create_app(settings, environ=environ or {}, drain_flag=DrainFlag()).test_client()


def test_forwards_and_answers_with_the_calculator_body_and_version(calculator_process):
    client = gateway_client(f"{calculator_process.url}/calcular")
    response = client.post("/calcular", json={"operacion": "restar", "numero1": 1, "numero2": 8})
    assert response.status_code == 200
    assert response.get_json() == {"resultado": -7, "resultado_hexa": "-0x7", "version": "v1"}
    assert response.headers["X-Calculator-Version"] == "v1"


def test_refuses_oversized_and_non_json_bodies_without_calling_upstream(calculator_process):
    before = scrape(calculator_process)
    client = gateway_client(f"{calculator_process.url}/calcular")
    assert client.post("/calcular", data=b"{" + b" " * 2000 + b"}", content_type="application/json").status_code == 413
    assert client.post("/calcular", data=b"{}", content_type="text/plain").status_code == 415
    after = scrape(calculator_process)

    def calcular_requests(samples):
        return {k: v for k, v in samples.items() if k[0] == "http_server_requests_total" and ("route", "/calcular") in k[1]}

    assert calcular_requests(after) == calcular_requests(before)


def test_readiness_does_not_depend_on_the_calculator():
    # A gateway that cannot reach its calculator is still ready: failing it
    # would cascade one service's outage into every caller's.
    client = gateway_client("http://127.0.0.1:9/calcular")
    assert client.get("/readyz").status_code == 200
    assert client.post("/calcular", json={"operacion": "sumar", "numero1": 1, "numero2": 1}).status_code == 503
