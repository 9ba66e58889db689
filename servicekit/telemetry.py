"""Metrics, traces and logs for both services, set up in one place.

The gunicorn model is one worker process with threads per container, scaled by
replicas (see ``servicekit/gunicorn_conf.py``). So metrics use
prometheus-client's ordinary in-process registry, one per app: no multiprocess
mode, whose ``.db`` files pile up and which cannot carry exemplars. Latency
histograms carry the trace id as an exemplar, exposed when the scraper asks for
OpenMetrics (Prometheus does).

Traces: one ``TracerProvider`` per process, made by the first ``create_app`` in
that process. gunicorn calls ``create_app`` in the worker after fork, so the
batch exporter's thread is started in the process that uses it. Spans are
exported over OTLP/HTTP only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; they
are made either way, for the trace ids in logs and exemplars. Context is read
and written in both W3C ``traceparent`` and B3 ``x-b3-*``: Envoy's tracer in
Istio speaks B3, OpenTelemetry collectors speak W3C.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Mapping

from flask import Flask, Response, g, request
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.propagators.b3 import B3MultiFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder
from pythonjsonlogger.json import JsonFormatter

from servicekit.settings import env_bool, env_str

# Buckets for a service that answers in about a millisecond, up to timeouts.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
UNMATCHED_ROUTE = "<unmatched>"

_process_lock = threading.Lock()
_tracer_provider: TracerProvider | None = None
_logging_configured = False


@dataclass(frozen=True)
class TelemetrySettings:
    service_name: str
    service_version: str
    enabled: bool = True
    otlp_endpoint: str = ""
    log_level: str = "INFO"

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
        )


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
        provider = tracer_provider(self.settings)
        FlaskInstrumentor().instrument_app(
            app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics"
        )
        app.before_request(_start_timer)
        app.after_request(self._record)

    def instrument_http_client(self) -> None:
        """Client spans, and trace context written, on every outbound ``requests`` call."""
        if not self.settings.enabled:
            return
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        instrumentor = RequestsInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=tracer_provider(self.settings))

    def metrics_view(self) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(encoder(self.registry), content_type=content_type)

    def _record(self, response: Response) -> Response:
        started = g.pop("telemetry_started", None)
        if started is None:
            return response
        elapsed = time.perf_counter() - started
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        method = request.method if request.method in _KNOWN_METHODS else "OTHER"
        self.http_requests.labels(route, method, str(response.status_code)).inc()
        self.http_duration.labels(route, method).observe(elapsed, exemplar=trace_exemplar())
        if route not in _QUIET_ROUTES:
            logging.getLogger("access").info(
                "request",
                extra={
                    "method": request.method,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 3),
                    "request_id": request.headers.get("x-request-id"),
                },
            )
        return response


_KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
# Probes and scrapes every few seconds would drown the log.
_QUIET_ROUTES = {"/healthz", "/readyz", "/metrics"}


def _start_timer() -> None:
    g.telemetry_started = time.perf_counter()


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


class _TraceContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


def json_log_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            datefmt="%Y-%m-%dT%H:%M:%S%z",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(_TraceContextFilter())
    return handler


def configure_logging(level: str) -> None:
    """JSON lines on stdout for the whole process, once."""
    global _logging_configured
    with _process_lock:
        if _logging_configured:
            return
        root = logging.getLogger()
        root.handlers[:] = [json_log_handler()]
        root.setLevel(level)
        _logging_configured = True
