"""Steady load through the ingress, for a person to watch (`make load`): a paced stream of
``POST /calcular`` with a live line of answers per status and version, so that Kiali, Grafana and
the access logs are never empty while faults and scenarios are switched by hand."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from urllib.parse import urlsplit

CALCULATION = json.dumps({"operacion": "sumar", "numero1": 2, "numero2": 3}).encode()
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_SECONDS = 3600.0
# One sending thread per this many requests per second: each waits for its answer.
RATE_PER_THREAD = 10.0


class SteadyLoad:
    """``rate`` requests per second for ``seconds`` (bounded), spread over a few threads."""

    def __init__(self, ingress_url: str, rate: float, seconds: float, canary: bool = False):
        if not 0 < rate <= 500:
            raise ValueError(f"RATE={rate:g}: from 0.1 to 500 requests per second")
        if not 0 < seconds <= MAX_SECONDS:
            raise ValueError(f"DURATION={seconds:g}s: at most {MAX_SECONDS:g} s")
        parts = urlsplit(ingress_url)
        self.host, self.port = parts.hostname, parts.port
        self.rate, self.seconds = rate, seconds
        self.headers = {"Content-Type": "application/json", **({"x-canary": "always"} if canary else {})}
        self.counts: Counter = Counter()  # (status, version) -> answers; status 0: no answer
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threads = max(1, round(rate / RATE_PER_THREAD))
        self._threads = [threading.Thread(target=self._send, args=(rate / threads,), daemon=True) for _ in range(threads)]
        self.started = 0.0

    def _send(self, rate: float) -> None:
        connection = None
        sent = 0
        while not self._stop.is_set():
            # Paced: this thread's n-th request leaves n/rate seconds after the start.
            if self._stop.wait(max(0.0, self.started + sent / rate - time.monotonic())):
                break
            if time.monotonic() >= self.started + self.seconds:
                break
            sent += 1
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT_SECONDS)
                connection.request("POST", "/calcular", body=CALCULATION, headers=self.headers)
                response = connection.getresponse()
                response.read()
                key = (response.status, response.getheader("x-calculator-version") or "-")
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException):
                key = (0, "-")
                if connection is not None:
                    connection.close()
                connection = None
            with self._lock:
                self.counts[key] += 1
        if connection is not None:
            connection.close()

    def start(self) -> "SteadyLoad":
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def snapshot(self) -> Counter:
        with self._lock:
            return Counter(self.counts)


def status_line(counts: Counter, elapsed: float) -> str:
    """``12 s  120 sent  200 v1 108 · 200 v2 11 · 503 v1 1``; status 0 reads "no answer"."""
    parts = [
        f"{'no answer' if status == 0 else status} {version} {count}"
        for (status, version), count in sorted(counts.items(), key=lambda item: (item[0][0], item[0][1]))
    ]
    return f"{elapsed:4.0f} s  {sum(counts.values()):5d} sent  " + (" · ".join(parts) or "-")


def run(load: SteadyLoad, say: Callable[[str], None], interval: float = 1.0) -> Counter:
    """Start the load and print a line every ``interval`` until it ends or Ctrl-C; the final counts."""
    load.start()
    try:
        while load.running():
            load.wait(interval)
            say(status_line(load.snapshot(), time.monotonic() - load.started))
    except KeyboardInterrupt:
        say("stopping (Ctrl-C)")
    finally:
        load.stop()
        load.wait(REQUEST_TIMEOUT_SECONDS + 1)
    counts = load.snapshot()
    say("total " + status_line(counts, time.monotonic() - load.started).strip())
    return counts
