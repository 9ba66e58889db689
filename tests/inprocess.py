"""Spans this test process makes, and HTTP servers in it: apps over real HTTP on 127.0.0.1.

Both services' apps built in one process share its tracer provider, so one
in-memory exporter sees the gateway's spans and the calculator's.
"""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from typing import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from werkzeug.serving import make_server

from servicekit.telemetry import TelemetrySettings, tracer_provider

_exporter = InMemorySpanExporter()
_attached = False

# What the HTTP semantic conventions require (or conditionally require, where
# the condition holds in these tests) of the spans.
SERVER_REQUIRED = ("http.request.method", "url.path", "url.scheme", "http.response.status_code")
SERVER_ROUTED = SERVER_REQUIRED + ("http.route",)
CLIENT_REQUIRED = ("http.request.method", "url.full", "server.address", "server.port")


def missing(span, required) -> list[str]:
    """The required attributes the span lacks."""
    return [name for name in required if name not in span.attributes]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans finished during the test."""
    global _attached
    if not _attached:
        tracer_provider(TelemetrySettings("test", "v0")).add_span_processor(SimpleSpanProcessor(_exporter))
        _attached = True
    _exporter.clear()
    yield _exporter
    _exporter.clear()


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` served over HTTP on 127.0.0.1 (werkzeug's threaded server); yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class SilentServer:
    """Accepts connections and never answers, or closes each one at once: counts them."""

    def __init__(self, close_at_once: bool = False):
        self.close_at_once = close_at_once
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed
                return
            self.accepted += 1
            if self.close_at_once:
                connection.recv(65536)  # the request, then no answer
                connection.close()
            else:
                self._held.append(connection)

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self._listener.close()
        for connection in self._held:
            connection.close()
        self._thread.join(timeout=10)
