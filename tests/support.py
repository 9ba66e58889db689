"""Helpers for tests that talk HTTP to real processes on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from localmesh.mesh import Mesh, MeshOptions
from localmesh.observe import scrape_url
from localmesh.processes import free_port

ROOT = Path(__file__).resolve().parents[1]

CALCULATOR_APP = "calculator.app:create_app()"
GATEWAY_APP = "gateway.app:create_app()"
# The calculator records these inbound headers on its server span, so a test
# can see what reached it.
CAPTURED_HEADERS = "x-b3-traceid,x-b3-spanid,x-b3-sampled,x-request-id,x-canary,traceparent"


# Every replica stops at once when a test stops its mesh: nobody needs the drain.
MESH_TEST_ENV = {"SHUTDOWN_DRAIN_SECONDS": "0"}


@contextmanager
def running_mesh(run_dir: Path, root: Path = ROOT, **options) -> Iterator[Mesh]:
    """A started mesh of the manifests under ``root`` (the repository's) on free ports, stopped on exit."""
    common_env = {**MESH_TEST_ENV, **options.pop("common_env", {})}
    settings = MeshOptions(root=root, run_dir=run_dir, ingress_port=free_port(), common_env=common_env, **options)
    mesh = Mesh(settings)
    mesh.start()
    try:
        yield mesh
    finally:
        mesh.stop()


def statuses(answers) -> Counter:
    """How many answers had each HTTP status."""
    return Counter(answer.status for answer in answers)


def post_json(url: str, body, headers: dict | None = None, timeout: float = 10.0):
    """POST a JSON body with http.client; returns (status, headers, decoded body or raw bytes)."""
    host, _, rest = url.removeprefix("http://").partition("/")
    hostname, _, port = host.partition(":")
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection = http.client.HTTPConnection(hostname, int(port), timeout=timeout)
    try:
        connection.request(
            "POST", "/" + rest, body=data, headers={"Content-Type": "application/json", **(headers or {})}
        )
        response = connection.getresponse()
        raw = response.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = raw
        return response.status, {k.lower(): v for k, v in response.getheaders()}, payload
    finally:
        connection.close()


def get(url: str, timeout: float = 10.0, headers: dict | None = None):
    host, _, rest = url.removeprefix("http://").partition("/")
    hostname, _, port = host.partition(":")
    connection = http.client.HTTPConnection(hostname, int(port), timeout=timeout)
    try:
        connection.request("GET", "/" + rest, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


class OtlpReceiver:
    """An OTLP/HTTP trace endpoint that keeps every span it is sent."""

    def __init__(self):
        self.spans = []  # (service name, span)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    data = gzip.decompress(data)
                request = ExportTraceServiceRequest.FromString(data)
                with receiver._lock:
                    for resource_spans in request.resource_spans:
                        attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                        for scope_spans in resource_spans.scope_spans:
                            for span in scope_spans.spans:
                                receiver.spans.append((attributes, span))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans_of_trace(self, trace_id: str):
        with self._lock:
            return [(a, s) for a, s in self.spans if s.trace_id.hex() == trace_id]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def scrape(service) -> dict:
    """Every sample as {(name, sorted labels): value}."""
    return scrape_url(service.url)


def delta(before, after, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0)
