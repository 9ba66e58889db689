"""The fault setting: its JSON, what it does to one request, and the holder hung requests wait on."""

import threading
import time

import pytest

from calculator.faults import Effect, Fault, FaultError, FaultSwitch


def draws(*values):
    numbers = iter(values)
    return lambda: next(numbers)


def test_no_fault_touches_nothing():
    assert not Fault().active
    assert Fault().decide(draws()) == Effect()


@pytest.mark.parametrize(
    "fault, numbers, effect",
    [
        (Fault(errors=0.5), (0.4,), Effect(status=503)),
        (Fault(errors=0.5), (0.5,), Effect()),
        (Fault(errors=1.0, status=500), (0.99,), Effect(status=500)),
        (Fault(delay_seconds=2.0), (0.99,), Effect(delay_seconds=2.0)),
        (Fault(delay_seconds=2.0, delay_share=0.25), (0.3,), Effect()),
        (Fault(delay_seconds=2.0, delay_share=0.25, errors=1.0), (0.2, 0.0), Effect(delay_seconds=2.0, status=503)),
        (Fault(hang=True, errors=1.0), (), Effect(hang=True)),
    ],
)
def test_what_a_fault_does_to_one_request(fault, numbers, effect):
    assert fault.active
    assert fault.decide(draws(*numbers)) == effect


def test_json_round_trip_and_defaults():
    fault = Fault.from_json({"errors": 0.5, "delay_seconds": 2})
    assert fault == Fault(errors=0.5, delay_seconds=2.0)
    assert Fault.from_json(fault.to_json()) == fault
    assert Fault.from_json({}) == Fault()


@pytest.mark.parametrize(
    "payload, field",
    [
        ([], "JSON object"),
        ({"errors": 1.5}, "errors"),
        ({"errors": "0.5"}, "errors"),
        ({"errors": True}, "errors"),
        ({"delay_seconds": -1}, "delay_seconds"),
        ({"delay_seconds": 601}, "delay_seconds"),
        ({"delay_share": 2}, "delay_share"),
        ({"status": 200}, "status"),
        ({"status": 404}, "status"),
        ({"status": True}, "status"),
        ({"hang": "yes"}, "hang"),
        ({"error": 0.5}, "unknown field 'error'"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_field(payload, field):
    with pytest.raises(FaultError, match=field):
        Fault.from_json(payload)


def test_a_hung_request_goes_on_when_the_fault_changes():
    switch = FaultSwitch(Fault(hang=True))
    lifted = []
    waiter = threading.Thread(target=lambda: lifted.append(switch.hang_until_changed(30)))
    waiter.start()
    deadline = time.monotonic() + 10
    while switch.held != 1:
        assert time.monotonic() < deadline, "the request never started to hang"
        time.sleep(0.01)
    switch.set(Fault(errors=0.5))
    waiter.join(10)
    assert lifted == [True] and switch.held == 0


def test_a_hang_ends_at_its_limit_anyway():
    assert FaultSwitch(Fault(hang=True)).hang_until_changed(0.05) is False
