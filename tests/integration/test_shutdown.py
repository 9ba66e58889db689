"""SIGTERM under load: readiness fails first, and no request in flight is lost."""

import http.client
import json
import signal
import threading
import time

import pytest

from localmesh.processes import http_status, wait_until
from tests.support import CALCULATOR_APP, post_json

pytestmark = pytest.mark.processes

BODY = json.dumps({"operacion": "sumar", "numero1": 1, "numero2": 2})
DRAIN_SECONDS = 1.0
REQUEST_SECONDS = 1.5  # longer than the drain: requests are in flight when the listener closes


class LoadBalancedClients:
    """Clients that keep a request in flight each, until the endpoint is withdrawn.

    ``withdraw()`` plays the load balancer removing the endpoint once readiness
    fails: no new request starts; those already sent must all get their 200.
    """

    def __init__(self, port: int, clients: int, max_requests: int = 500):
        self.port = port
        self.completions: list[tuple[int, float]] = []  # (status, time)
        self.lost: list[str] = []
        self._withdrawn = threading.Event()
        self._budget = max_requests
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def _take(self) -> bool:
        with self._lock:
            self._budget -= 1
            return self._budget >= 0 and not self._withdrawn.is_set()

    def _run(self):
        while self._take():
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                connection.request("POST", "/calcular", BODY, {"Content-Type": "application/json"})
                status = connection.getresponse().status
                with self._lock:
                    self.completions.append((status, time.monotonic()))
            except OSError as error:
                with self._lock:
                    self.lost.append(repr(error))
            finally:
                connection.close()

    def start(self):
        for thread in self._threads:
            thread.start()

    def withdraw(self):
        self._withdrawn.set()

    def join(self, timeout: float):
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), "clients still running"


def test_sigterm_under_load_drains_then_finishes_in_flight_requests(start_service):
    calculator = start_service(
        "calc-sigterm",
        CALCULATOR_APP,
        {
            "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
            "FAULT_DELAY_SECONDS": str(REQUEST_SECONDS),
            "GUNICORN_THREADS": "16",
        },
    )
    port = calculator.spec.port
    clients = LoadBalancedClients(port, clients=6)
    clients.start()
    wait_until(lambda: len(clients.completions) >= 6, 20, what="load running")

    terminated_at = time.monotonic()
    calculator.signal(signal.SIGTERM)
    wait_until(lambda: http_status("127.0.0.1", port, "/readyz") == 503, 5, what="/readyz fails")
    clients.withdraw()
    # Readiness failed first: a request arriving now is still served.
    status, _, payload = post_json(f"{calculator.url}/calcular", {"operacion": "sumar", "numero1": 2, "numero2": 2})
    assert (status, payload["resultado"]) == (200, 4)

    clients.join(60)
    assert calculator.process.wait(30) == 0
    assert clients.lost == []
    assert {status for status, _ in clients.completions} == {200}
    listener_closed_at = terminated_at + DRAIN_SECONDS
    finished_after_close = [t for _, t in clients.completions if t > listener_closed_at]
    assert finished_after_close, "no request was in flight when the listener closed"
    # and the listener did close: nothing answers any more
    assert http_status("127.0.0.1", port, "/healthz") is None
