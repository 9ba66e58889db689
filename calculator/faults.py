"""A calculator replica's fault setting: what to do to a share of ``POST /calcular``. Pure but for
the holder's lock and event.

Set at run time through the admin surface (``calculator/admin.py``), or from the first request
by the environment (``FAULT_FAILURE_RATE``, ``FAULT_DELAY_SECONDS``: the demos and tests that
need a replica broken before any traffic). Probes, ``/metrics`` and ``/resultados`` are never
faulted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

# The statuses a failing replica may answer: the 5xx a proxy tells apart (retried and ejected or
# not: docs/fault-tolerance.md), never a 2xx or a client's 4xx.
STATUSES = (500, 502, 503, 504)
MAX_DELAY_SECONDS = 600.0


class FaultError(ValueError):
    """A fault setting that cannot be applied; the message names the field."""


@dataclass(frozen=True)
class Fault:
    errors: float = 0.0  # share of requests answered with ``status``
    status: int = 503
    delay_seconds: float = 0.0  # added before answering, to ``delay_share`` of the requests
    delay_share: float = 1.0
    hang: bool = False  # accept every request and answer none, until the fault changes

    @property
    def active(self) -> bool:
        return self.hang or self.errors > 0 or (self.delay_seconds > 0 and self.delay_share > 0)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: object) -> "Fault":
        """A fault from the admin API's JSON; fields left out take their defaults (no fault)."""
        if not isinstance(payload, Mapping):
            raise FaultError("the body must be a JSON object")
        unknown = sorted(set(payload) - set(cls.__dataclass_fields__))
        if unknown:
            raise FaultError(f"unknown field {unknown[0]!r}: expected {', '.join(cls.__dataclass_fields__)}")
        values = {**asdict(cls()), **payload}
        for name in ("errors", "delay_share"):
            values[name] = _number(name, values[name], 0.0, 1.0)
        values["delay_seconds"] = _number("delay_seconds", values["delay_seconds"], 0.0, MAX_DELAY_SECONDS)
        status = values["status"]
        if isinstance(status, bool) or status not in STATUSES:
            raise FaultError(f"status: {status!r} is not one of {', '.join(map(str, STATUSES))}")
        if not isinstance(values["hang"], bool):
            raise FaultError(f"hang: {values['hang']!r} is not true or false")
        return cls(**values)

    def decide(self, draw: Callable[[], float]) -> "Effect":
        """What this fault does to one request; ``draw`` gives uniform numbers in [0, 1)."""
        if self.hang:
            return Effect(hang=True)
        delay = self.delay_seconds if self.delay_seconds and draw() < self.delay_share else 0.0
        status = self.status if self.errors and draw() < self.errors else None
        return Effect(delay_seconds=delay, status=status)


@dataclass(frozen=True)
class Effect:
    """One request's fate: wait, then fail with ``status`` (None: answer normally); or hang."""

    delay_seconds: float = 0.0
    status: int | None = None
    hang: bool = False


def _number(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise FaultError(f"{name}: {value!r} is not a number from {low:g} to {high:g}")
    return float(value)


class FaultSwitch:
    """The replica's current fault, changed by the admin surface while requests read it."""

    def __init__(self, initial: Fault = Fault()):
        self._fault = initial
        self._changed = threading.Condition()
        self.held = 0  # requests a hang holds now

    @property
    def current(self) -> Fault:
        return self._fault

    def set(self, fault: Fault) -> None:
        with self._changed:
            self._fault = fault
            self._changed.notify_all()  # hung requests look again

    def hang_until_changed(self, timeout: float) -> bool:
        """Block while the fault says hang, at most ``timeout`` seconds; True if it was lifted."""
        with self._changed:
            self.held += 1
            try:
                return self._changed.wait_for(lambda: not self._fault.hang, timeout)
            finally:
                self.held -= 1
