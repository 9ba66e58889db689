"""The gateway's HTTP layer: the calculator page and ``/calcular`` forwarded."""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, current_app, jsonify, request

from gateway.config import GatewaySettings
from gateway.upstream import CalculatorClient, UpstreamTimeout, UpstreamUnavailable
from servicekit import messages
from servicekit.errors import MESSAGES, ApiError
from servicekit.inbound import read_body
from servicekit.telemetry import Telemetry, trace_exemplar

# Answers of the calculator's mesh that the client should see as they are.
PASSED_THROUGH_HEADERS = ("x-calculator-version", "x-calculator-fault", "x-envoy-overloaded")
# Trace headers copied by hand only when OpenTelemetry is off: when it is on,
# opentelemetry-instrumentation-urllib3 writes them for the gateway's own client span.
TRACE_HEADERS = (
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
)
MSG_UNAVAILABLE = messages.CALCULATOR_UNAVAILABLE
MSG_TIMEOUT = messages.CALCULATOR_TIMEOUT
MSG_BAD_UPSTREAM = messages.CALCULATOR_ERROR
UPSTREAM_LABELS = ["status", "failure"]
FAILURE_TIMEOUT = "timeout"
FAILURE_UNAVAILABLE = "unavailable"
CONTENT_SECURITY_POLICY = "default-src 'self'; frame-ancestors 'none'"


class GatewayApi:
    def __init__(self, settings: GatewaySettings, client: CalculatorClient, telemetry: Telemetry):
        self.settings = settings
        self.client = client
        self.telemetry = telemetry
        self.forwarded = settings.forward_headers + (
            () if telemetry.settings.enabled else TRACE_HEADERS
        )
        # status: the calculator's answer, empty when none came; failure: why none came.
        self.upstream_total = telemetry.counter(
            "gateway_upstream_requests",
            "Calls to the calculator, by its HTTP status, or by failure (timeout, unavailable) when it gave none.",
            UPSTREAM_LABELS,
        )
        self.upstream_duration = telemetry.histogram(
            "gateway_upstream_request_duration_seconds",
            "Time the calculator took to answer, by status, or by failure when it gave none.",
            UPSTREAM_LABELS,
        )

    def blueprint(self) -> Blueprint:
        bp = Blueprint("gateway", __name__)
        bp.add_url_rule("/", view_func=self.index, methods=["GET"])
        bp.add_url_rule("/calcular", view_func=self.calcular, methods=["POST"])
        return bp

    def index(self):
        response = current_app.send_static_file("index.html")
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response

    def calcular(self):
        if not request.is_json:
            raise ApiError(415, MESSAGES[415])
        body = read_body(self.settings.max_request_bytes)  # the calculator gets it whole or not at all
        headers = {"Content-Type": request.headers["Content-Type"]}
        for name in self.forwarded:
            if name in request.headers:
                headers[name] = request.headers[name]

        started = time.perf_counter()
        try:
            upstream = self.client.post(body, headers)
        except UpstreamTimeout:
            self._observe("", FAILURE_TIMEOUT, started)
            raise ApiError(504, MSG_TIMEOUT) from None
        except UpstreamUnavailable:
            self._observe("", FAILURE_UNAVAILABLE, started)
            raise ApiError(503, MSG_UNAVAILABLE) from None
        self._observe(str(upstream.status), "", started)

        if upstream.status < 500 and upstream.is_json:
            response = Response(upstream.body, status=upstream.status, mimetype="application/json")
        else:
            # The mesh's own 503 (overflow, no healthy host) and 504 (route
            # timeout) keep their meaning; any other failure is a bad gateway.
            status = upstream.status if upstream.status in (503, 504) else 502
            response = jsonify(
                error=MSG_BAD_UPSTREAM,
                estado_upstream=upstream.status,
                detalle=_error_detail(upstream.body),
            )
            response.status_code = status
        for name in PASSED_THROUGH_HEADERS:
            if name in upstream.headers:
                response.headers[name] = upstream.headers[name]
        return response

    def _observe(self, status: str, failure: str, started: float) -> None:
        self.upstream_total.labels(status, failure).inc()
        self.upstream_duration.labels(status, failure).observe(
            time.perf_counter() - started, exemplar=trace_exemplar()
        )


def _error_detail(body: bytes) -> str:
    """The upstream's own error message, if it sent one, else its first bytes as text."""
    try:
        decoded = json.loads(body)
        if isinstance(decoded, dict) and isinstance(decoded.get("error"), str):
            return decoded["error"][:200]
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's stack
        pass
    return body[:200].decode("utf-8", "replace")
