"""Faults at run time on a real calculator (gunicorn, production config): set through its admin
surface on ADMIN_BIND, never reachable on the serving port, never touching the probes."""

from __future__ import annotations

import threading

import pytest

from calculator import admin_client
from localmesh.processes import free_port, http_status, wait_until
from tests.support import CALCULATOR_APP, get, post_json

pytestmark = pytest.mark.processes

CALCULATION = {"operacion": "sumar", "numero1": 2, "numero2": 3}


@pytest.fixture(scope="module")
def calculator(start_service):
    admin = f"127.0.0.1:{free_port()}"
    service = start_service("faults-calculator", CALCULATOR_APP, {"ADMIN_BIND": admin, "HOSTNAME": "calculator-x"})
    wait_until(lambda: _answers(admin), 10, what="the admin surface")
    yield service, admin
    admin_client.clear_fault(admin)


def _answers(admin: str) -> bool:
    try:
        admin_client.read_fault(admin)
        return True
    except admin_client.FaultCommandError:
        return False


@pytest.fixture(autouse=True)
def no_fault_after(calculator):
    yield
    admin_client.clear_fault(calculator[1])


def probes_answer(service) -> bool:
    host, port = "127.0.0.1", service.spec.port
    return all(http_status(host, port, path) == 200 for path in ("/healthz", "/readyz", "/metrics"))


def test_a_fault_set_at_run_time_applies_to_calcular_only(calculator):
    service, admin = calculator
    assert post_json(f"{service.url}/calcular", CALCULATION)[0] == 200
    answer = admin_client.set_fault(admin, admin_client.fault_body(errors=1.0, status=500))
    assert answer["pod"] == "calculator-x"
    status, headers, body = post_json(f"{service.url}/calcular", CALCULATION)
    assert (status, headers["x-calculator-fault"], body["fallo_inyectado"]) == (500, "failure", True)
    assert probes_answer(service)
    admin_client.clear_fault(admin)
    assert post_json(f"{service.url}/calcular", CALCULATION)[0] == 200


def test_the_admin_surface_is_not_on_the_serving_port(calculator):
    service, _ = calculator
    status, _, body = get(f"{service.url}/fault")
    assert status == 404
    status, _, _ = post_json(f"{service.url}/fault", {"errors": 1.0})
    assert status == 404


def test_a_hung_replica_accepts_answers_nothing_and_recovers_when_cleared(calculator):
    service, admin = calculator
    admin_client.set_fault(admin, admin_client.fault_body(hang=True))
    answers = []
    client = threading.Thread(target=lambda: answers.append(post_json(f"{service.url}/calcular", CALCULATION, timeout=30)))
    client.start()
    # Accepted and held: the replica counts it while no answer comes.
    wait_until(lambda: admin_client.read_fault(admin)["held"] == 1, 10, what="the request held by the hang")
    assert answers == []
    # The probes and the admin surface still answer: the hang holds one serving thread of eight.
    assert probes_answer(service)
    assert admin_client.read_fault(admin)["fault"]["hang"] is True
    admin_client.clear_fault(admin)
    client.join(10)
    status, headers, _ = answers[0]
    assert (status, headers["x-calculator-fault"]) == (200, "hang")

