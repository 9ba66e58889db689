"""The calculator's admin surface (its own app, its own port) and its client."""

import argparse
import json

import pytest

from calculator import admin_client
from calculator.admin import admin_app
from calculator.faults import Fault, FaultSwitch
from servicekit.admin import AdminSurface


@pytest.fixture
def switch():
    return FaultSwitch()


@pytest.fixture
def client(switch):
    return admin_app(switch, "calculator-v1-0").test_client()


def test_put_get_delete(client, switch):
    answer = client.put("/fault", json={"errors": 0.5, "status": 500})
    assert answer.status_code == 200
    assert answer.get_json()["fault"]["errors"] == 0.5 and answer.get_json()["active"] is True
    assert switch.current == Fault(errors=0.5, status=500)
    assert client.get("/fault").get_json()["pod"] == "calculator-v1-0"
    assert client.delete("/fault").get_json()["active"] is False
    assert switch.current == Fault()


def test_a_bad_setting_is_a_400_naming_the_field_and_changes_nothing(client, switch):
    switch.set(Fault(errors=0.1))
    answer = client.put("/fault", data="{\"errors\": 3}", content_type="application/json")
    assert answer.status_code == 400 and "errors" in answer.get_json()["error"]
    assert client.put("/fault", data="not json").status_code == 400
    assert switch.current == Fault(errors=0.1)


def test_only_the_fault_resource(client):
    assert client.get("/calcular").status_code == 404
    assert client.post("/fault").status_code == 405
    assert "GET, PUT and DELETE /fault" in client.get("/metrics").get_json()["error"]


def test_the_client_over_a_real_admin_surface(switch):
    surface = AdminSurface("127.0.0.1:0", admin_app(switch, "calculator-v2-0"))
    surface.start()
    try:
        address = f"127.0.0.1:{surface.port}"
        body = admin_client.fault_body(errors=0.25, delay="500ms", delay_share=0.5)
        answer = admin_client.set_fault(address, body)
        assert admin_client.describe(answer["fault"]) == "25% answered 503, 50% delayed 0.5 s"
        assert switch.current == Fault(errors=0.25, delay_seconds=0.5, delay_share=0.5)
        with pytest.raises(admin_client.FaultCommandError, match="status"):
            admin_client.set_fault(address, {"status": 418})
        admin_client.clear_fault(address)
        assert admin_client.describe(admin_client.read_fault(address)["fault"]) == "none"
    finally:
        surface.stop()
    with pytest.raises(admin_client.FaultCommandError, match="no answer"):
        admin_client.read_fault(address)


@pytest.mark.parametrize("text, seconds", [("2s", 2.0), ("500ms", 0.5), ("1.5", 1.5)])
def test_delays_as_people_write_them(text, seconds):
    assert admin_client.parse_delay(text) == seconds


def test_a_delay_that_is_no_duration():
    with pytest.raises(admin_client.FaultCommandError, match="2m"):
        admin_client.parse_delay("2m")


def test_the_cli_in_a_pod_needs_its_admin_bind(monkeypatch, capsys):
    monkeypatch.delenv("ADMIN_BIND", raising=False)
    assert admin_client.main(["show"]) == 2
    assert "ADMIN_BIND" in capsys.readouterr().err


def test_the_cli_reaches_its_admin_bind(monkeypatch, capsys, switch):
    surface = AdminSurface("127.0.0.1:0", admin_app(switch, "calculator-v1-1"))
    surface.start()
    try:
        monkeypatch.setenv("ADMIN_BIND", f"127.0.0.1:{surface.port}")
        assert admin_client.main(["set", "--hang"]) == 0
        assert capsys.readouterr().out.strip() == "calculator-v1-1: fault hangs every request"
        assert switch.current.hang
        assert admin_client.main(["clear"]) == 0
        assert json.dumps(switch.current.to_json()) == json.dumps(Fault().to_json())
    finally:
        surface.stop()


@pytest.mark.parametrize(
    "fault",
    [Fault(), Fault(errors=0.5), Fault(errors=1.0, status=500), Fault(delay_seconds=4.0),
     Fault(delay_seconds=0.25, delay_share=0.5, errors=0.1, status=504), Fault(hang=True)],
)
def test_the_command_line_words_of_a_fault_give_the_same_fault(fault):
    # What scenarios.kind passes to `scripts/kind.sh fault POD ...` for a catalogue's fault.
    parser = argparse.ArgumentParser()
    admin_client.add_fault_options(parser)
    args = parser.parse_args(admin_client.fault_options(fault.to_json()))
    body = admin_client.fault_body(args.errors, args.status, args.delay, args.delay_share, args.hang)
    assert Fault.from_json(body) == fault
