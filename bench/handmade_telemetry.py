"""The services' telemetry as it was before issue 13, kept for ``bench.telemetry_pieces`` only.

Server and client spans made by hand with the SDK instead of
opentelemetry-instrumentation-flask and -urllib3: the comparison the
instrumentations are measured against. Nothing outside the benchmark imports it.
Its code follows unchanged (servicekit/telemetry.py at commit fa73840); only this docstring is new.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping
from urllib.parse import urlsplit

from flask import Flask, Response, request
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.b3 import B3MultiFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder

from servicekit.settings import env_bool, env_str

# The JSON lines are not what is compared: the shipped ones, configured once per process.
from servicekit.telemetry import configure_logging

# Buckets for a service that answers in about a millisecond, up to timeouts.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
UNMATCHED_ROUTE = "<unmatched>"

_process_lock = threading.Lock()
_tracer_provider: TracerProvider | None = None


@dataclass(frozen=True)
class TelemetrySettings:
    service_name: str
    service_version: str
    enabled: bool = True
    otlp_endpoint: str = ""
    log_level: str = "INFO"
    # Request and response headers recorded as span attributes, as the
    # OpenTelemetry instrumentations read them from the same variables.
    capture_request_headers: tuple[str, ...] = ()
    capture_response_headers: tuple[str, ...] = ()

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], service_name: str, service_version: str
    ) -> "TelemetrySettings":
        return cls(
            service_name=env_str(environ, "OTEL_SERVICE_NAME", service_name),
            service_version=service_version,
            enabled=env_bool(environ, "TELEMETRY_ENABLED", True),
            otlp_endpoint=env_str(environ, "OTEL_EXPORTER_OTLP_ENDPOINT", ""),
            log_level=env_str(environ, "LOG_LEVEL", "INFO").upper(),
            capture_request_headers=_header_list(environ, CAPTURE_REQUEST_HEADERS),
            capture_response_headers=_header_list(environ, CAPTURE_RESPONSE_HEADERS),
        )


CAPTURE_REQUEST_HEADERS = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"
CAPTURE_RESPONSE_HEADERS = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"


def _header_list(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in env_str(environ, name, "").split(",") if h.strip())


def _header_attribute(kind: str, header: str) -> str:
    """The semantic conventions' name: http.request.header.x_b3_traceid."""
    return f"http.{kind}.header.{header.replace('-', '_')}"


class _EnvironGetter(Getter):
    """Trace context read straight from the WSGI environ (HTTP_TRACEPARENT, HTTP_X_B3_TRACEID)."""

    def get(self, carrier, key):
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return None if value is None else [value]

    def keys(self, carrier):
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


_ENVIRON_GETTER = _EnvironGetter()


class Telemetry:
    """The metrics of one app, and the hooks that record every request."""

    def __init__(self, settings: TelemetrySettings):
        self.settings = settings
        # *_created series double what a scrape carries and no panel reads them.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "http_server_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "http_server_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def counter(self, name: str, documentation: str, labels: list[str]) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def histogram(self, name: str, documentation: str, labels: list[str]) -> Histogram:
        return Histogram(
            name, documentation, labels, buckets=LATENCY_BUCKETS, registry=self.registry
        )

    def init_app(self, app: Flask) -> None:
        configure_logging(self.settings.log_level)
        app.extensions["telemetry"] = self
        app.add_url_rule("/metrics", "metrics", self.metrics_view)
        if not self.settings.enabled:
            return
        self._tracer = tracer_provider(self.settings).get_tracer(__name__)
        self._request_headers = [
            ("HTTP_" + h.upper().replace("-", "_"), _header_attribute("request", h))
            for h in self.settings.capture_request_headers
        ]
        self._response_headers = [(h, _header_attribute("response", h)) for h in self.settings.capture_response_headers]
        app.before_request(self._start)
        app.after_request(self._record)
        app.teardown_request(self._end)

    def _start(self) -> None:
        """The request's SERVER span, child of the caller's context, current until teardown."""
        # One lookup of the request proxy per hook, and the request's state in its
        # environ: each access through Flask's proxies (request, g) costs a context lookup.
        current = request._get_current_object()
        environ = current.environ
        state = environ[_STATE] = _RequestState(time.perf_counter())
        rule = current.url_rule
        route = rule.rule if rule is not None else None
        if route in _QUIET_ROUTES:
            return  # probes and scrapes: counted, never traced
        method = environ["REQUEST_METHOD"]
        attributes = {
            "http.request.method": method,
            "url.path": environ.get("PATH_INFO", ""),
            "url.scheme": environ["wsgi.url_scheme"],
            "client.address": environ.get("REMOTE_ADDR", ""),
        }
        if route is not None:
            attributes["http.route"] = route
        for key, attribute in self._request_headers:
            value = environ.get(key)
            if value is not None:
                attributes[attribute] = (value,)
        parent = propagate.extract(environ, getter=_ENVIRON_GETTER)
        state.span = self._tracer.start_span(
            f"{method} {route}" if route else method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        state.token = otel_context.attach(trace.set_span_in_context(state.span, parent))

    def _end(self, error: BaseException | None) -> None:
        state = request.environ.get(_STATE)
        if state is None or state.span is None:
            return
        span, state.span = state.span, None
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()
        otel_context.detach(state.token)

    @contextmanager
    def client_span(self, method: str, url: str, headers: dict[str, str]) -> Iterator[Callable[[int], None]]:
        """A CLIENT span around one outbound call, its context written into ``headers``.

        Yields a function that records the answer's status. With telemetry off,
        nothing is made and nothing written.
        """
        if not self.settings.enabled:
            yield _ignore_status
            return
        parts = urlsplit(url)
        span = self._tracer.start_span(
            method,
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": method, "url.full": url, "server.address": parts.hostname or ""},
        )

        def record(status: int) -> None:
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                span.set_status(Status(StatusCode.ERROR))

        # use_span ends it, and records an exception that escapes as the span's error.
        with trace.use_span(span, end_on_exit=True):
            propagate.inject(headers)
            yield record

    def metrics_view(self) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(encoder(self.registry), content_type=content_type)

    def _record(self, response: Response) -> Response:
        current = request._get_current_object()
        state = current.environ.get(_STATE)
        if state is None:
            return response
        elapsed = time.perf_counter() - state.started
        rule = current.url_rule
        route = rule.rule if rule is not None else UNMATCHED_ROUTE
        method = current.method
        known_method = method if method in _KNOWN_METHODS else "OTHER"
        status = response.status_code
        self.http_requests.labels(route, known_method, str(status)).inc()
        self.http_duration.labels(route, known_method).observe(elapsed, exemplar=trace_exemplar())
        span = state.span
        if span is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            for header, attribute in self._response_headers:
                value = response.headers.get(header)
                if value is not None:
                    span.set_attribute(attribute, (value,))
        if route not in _QUIET_ROUTES and _ACCESS_LOG.isEnabledFor(logging.INFO):
            _ACCESS_LOG.info(
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "request_id": current.environ.get("HTTP_X_REQUEST_ID"),
                },
            )
        return response


_KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
# Probes and scrapes every few seconds would drown the log, and the traces.
_QUIET_ROUTES = {"/healthz", "/readyz", "/metrics"}
_ACCESS_LOG = logging.getLogger("access")
_STATE = "servicekit.telemetry"  # the request's entry in its WSGI environ


class _RequestState:
    __slots__ = ("started", "span", "token")

    def __init__(self, started: float):
        self.started = started
        self.span = None
        self.token = None


def _ignore_status(status: int) -> None:
    pass


def trace_exemplar() -> dict[str, str] | None:
    """The current trace id as an exemplar label set, or None outside a sampled span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return {"trace_id": format(context.trace_id, "032x")}


def tracer_provider(settings: TelemetrySettings) -> TracerProvider:
    """The process's tracer provider, made on first use."""
    global _tracer_provider
    with _process_lock:
        if _tracer_provider is None:
            resource = Resource.create(
                {
                    "service.name": settings.service_name,
                    "service.version": settings.service_version,
                }
            )
            provider = TracerProvider(resource=resource)
            if settings.otlp_endpoint:
                # Imported here: the exporter pulls in protobuf, which a
                # process that exports nothing does not need.
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )

                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            trace.set_tracer_provider(provider)
            propagate.set_global_textmap(
                CompositePropagator(
                    [TraceContextTextMapPropagator(), W3CBaggagePropagator(), B3MultiFormat()]
                )
            )
            _tracer_provider = provider
        return _tracer_provider


def shutdown_tracing() -> None:
    """Flush spans still in the batch queue; for the worker's exit."""
    if _tracer_provider is not None:
        _tracer_provider.shutdown()
