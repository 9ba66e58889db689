import json
import logging
import re
import time
from datetime import datetime, timedelta

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.http import parse_excluded_urls
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from calculator.app import create_app
from calculator.config import CalculatorSettings
from servicekit.errors import MESSAGES
from servicekit.lifecycle import DrainFlag
from servicekit.settings import SettingsError
from servicekit.telemetry import (
    DEFAULT_PROPAGATORS,
    JsonLineFormatter,
    TelemetrySettings,
    excluded_urls,
    json_log_handler,
    load_propagators,
    trace_exemplar,
    tracer_provider,
)
from tests.inprocess import SERVER_ROUTED, missing


def _samples(text, name):
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def test_requests_are_counted_by_route_template_not_raw_path(calculator_client):
    calculator_client.get("/resultados?limite=1")
    calculator_client.get("/no/existe/1")
    calculator_client.get("/no/existe/2")
    text = calculator_client.get("/metrics").get_data(as_text=True)
    counted = {
        (s.labels["route"], s.labels["status"]): s.value for s in _samples(text, "http_server_requests_total")
    }
    assert counted == {("/resultados", "200"): 1.0, ("<unmatched>", "404"): 2.0}


def test_metrics_speak_openmetrics_with_exemplars_when_asked(calculator_client):
    calculator_client.post("/calcular", json={"operacion": "sumar", "numero1": 1, "numero2": 2})
    response = calculator_client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.content_type.startswith("application/openmetrics-text")
    exemplars = [
        s.exemplar
        for f in parse_openmetrics(response.get_data(as_text=True))
        for s in f.samples
        if s.name == "http_server_request_duration_seconds_bucket" and s.exemplar
    ]
    assert exemplars and len(exemplars[0].labels["trace_id"]) == 32


def test_plain_scrapes_get_the_classic_text_format(calculator_client):
    response = calculator_client.get("/metrics")
    assert response.content_type.startswith("text/plain")


def test_no_exemplar_outside_a_span():
    assert trace_exemplar() is None


def test_telemetry_can_be_switched_off_and_still_serves_metrics(tmp_path):
    app = create_app(
        CalculatorSettings(results_file=tmp_path / "r.txt"),
        environ={"TELEMETRY_ENABLED": "false"},
        drain_flag=DrainFlag(),
    )
    client = app.test_client()
    assert client.post("/calcular", json={"operacion": "sumar", "numero1": 1, "numero2": 2}).status_code == 200
    assert _samples(client.get("/metrics").get_data(as_text=True), "http_server_requests_total") == []


def test_log_lines_are_json_with_the_trace_id():
    records = []
    handler = json_log_handler()
    handler.stream = type("Sink", (), {"write": lambda self, s: records.append(s), "flush": lambda self: None})()
    logger = logging.getLogger("test.telemetry")
    logger.addHandler(handler)
    logger.propagate = False
    tracer = tracer_provider(TelemetrySettings("test", "v0")).get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logger.warning("hola", extra={"route": "/calcular"})
    line = json.loads("".join(records))
    assert line["message"] == "hola" and line["level"] == "WARNING" and line["route"] == "/calcular"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")


# -- the server span, to the HTTP semantic conventions ---------------------------------------------

def _server_spans(spans):
    return [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]


def test_the_server_span_carries_the_conventions_attributes(calculator_factory, spans):
    client = calculator_factory().test_client()
    response = client.post(
        "/calcular?origen=prueba",
        json={"operacion": "sumar", "numero1": 1, "numero2": 2},
        base_url="http://calc.example:8443",
        headers={"User-Agent": "prueba/1.0"},
    )
    assert response.status_code == 200
    [span] = _server_spans(spans)
    assert span.name == "POST /calcular"
    assert missing(span, SERVER_ROUTED) == []
    assert {k: span.attributes.get(k) for k in (*SERVER_ROUTED, "url.query", "server.address", "server.port", "user_agent.original")} == {
        "http.request.method": "POST",
        "url.path": "/calcular",
        "url.scheme": "http",
        "http.response.status_code": 200,
        "http.route": "/calcular",
        "url.query": "origen=prueba",
        "server.address": "calc.example",
        "server.port": 8443,
        "user_agent.original": "prueba/1.0",
    }
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in span.attributes
    # The stable conventions only: none of the old names beside them.
    assert not {"http.method", "http.status_code", "http.target", "http.url", "net.host.name"} & set(span.attributes)


def test_a_required_attribute_missing_is_caught():
    class Span:
        attributes = {"http.request.method": "POST", "url.path": "/calcular", "url.scheme": "http"}

    assert missing(Span(), SERVER_ROUTED) == ["http.response.status_code", "http.route"]


def test_an_unknown_method_is_other_in_the_span_and_the_metrics(calculator_client, spans):
    assert calculator_client.open("/calcular", method="FOO").status_code == 405
    [span] = _server_spans(spans)
    assert span.name == "HTTP"
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "FOO"
    assert "http.route" not in span.attributes  # no route matched
    text = calculator_client.get("/metrics").get_data(as_text=True)
    methods = {s.labels["method"] for s in _samples(text, "http_server_requests_total")}
    assert "_OTHER" in methods and "FOO" not in methods


def test_a_4xx_is_not_a_server_error(calculator_client, spans):
    assert calculator_client.post("/calcular", json={"operacion": "raiz"}).status_code == 400
    [span] = _server_spans(spans)
    assert span.attributes["http.response.status_code"] == 400
    assert span.status.status_code is StatusCode.UNSET and "error.type" not in span.attributes


def test_a_5xx_is_an_error_with_its_exception_recorded(calculator_factory, spans):
    app = calculator_factory()

    def broken():
        raise RuntimeError("roto")

    app.add_url_rule("/roto", "roto", broken)
    response = app.test_client().get("/roto")
    assert response.status_code == 500 and response.get_json() == {"error": MESSAGES[500]}
    [span] = _server_spans(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "500"
    [event] = span.events
    assert event.name == "exception" and event.attributes["exception.type"] == "RuntimeError"


def test_an_injected_failure_is_an_error_without_an_exception(calculator_factory, spans):
    app = calculator_factory(fault_failure_rate=1.0)
    assert app.test_client().post("/calcular", json={"operacion": "sumar", "numero1": 1, "numero2": 2}).status_code == 503
    [span] = _server_spans(spans)
    assert span.status.status_code is StatusCode.ERROR and span.attributes["error.type"] == "503"
    assert span.events == ()


def test_probes_and_scrapes_are_not_traced(calculator_client, spans):
    for path in ("/healthz", "/readyz", "/metrics", "/healthz?detalle=1"):
        calculator_client.get(path)
    assert _server_spans(spans) == []
    calculator_client.get("/resultados?limite=1")
    assert [s.attributes["http.route"] for s in _server_spans(spans)] == ["/resultados"]


def test_excluded_urls_match_the_quiet_routes_only():
    excluded = parse_excluded_urls(excluded_urls())
    for url in ("http://h/healthz", "http://h:8080/readyz", "https://h/metrics?x=1"):
        assert excluded.url_disabled(url), url
    for url in ("http://h/calcular", "http://h/calcular?next=/healthz", "http://h/metrics/x", "http://h/x/healthz"):
        assert not excluded.url_disabled(url), url


def test_captured_headers_are_named_as_the_conventions_name_them(calculator_client, spans, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-request-id,X-Canary")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "x-calculator-version")
    calculator_client.post(
        "/calcular",
        json={"operacion": "sumar", "numero1": 1, "numero2": 2},
        headers={"X-Request-Id": "abc", "x-canary": "always"},
    )
    [span] = _server_spans(spans)
    captured = {k: v for k, v in span.attributes.items() if ".header." in k}
    assert captured == {
        "http.request.header.x-request-id": ("abc",),
        "http.request.header.x-canary": ("always",),
        "http.response.header.x-calculator-version": ("v1",),
    }


def test_the_callers_trace_context_is_the_parent(calculator_client, spans):
    trace_id, parent_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    calculator_client.get("/resultados", headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})
    [span] = _server_spans(spans)
    assert format(span.context.trace_id, "032x") == trace_id
    assert format(span.parent.span_id, "016x") == parent_id and span.parent.is_remote


def test_b3_alone_is_read_as_the_parent_too(calculator_client, spans):
    trace_id, parent_id = "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1"
    calculator_client.get("/resultados", headers={"x-b3-traceid": trace_id, "x-b3-spanid": parent_id, "x-b3-sampled": "1"})
    [span] = _server_spans(spans)
    assert format(span.context.trace_id, "032x") == trace_id and format(span.parent.span_id, "016x") == parent_id


def test_the_exemplar_is_the_requests_trace(calculator_client, spans):
    calculator_client.post("/calcular", json={"operacion": "sumar", "numero1": 1, "numero2": 2})
    [span] = _server_spans(spans)
    response = calculator_client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    exemplars = {
        s.exemplar.labels["trace_id"]
        for f in parse_openmetrics(response.get_data(as_text=True))
        for s in f.samples
        if s.name == "http_server_request_duration_seconds_bucket" and s.exemplar and s.labels["route"] == "/calcular"
    }
    assert exemplars == {format(span.context.trace_id, "032x")}


# -- propagators -----------------------------------------------------------------------------------

def test_the_default_propagators_write_w3c_baggage_and_b3_headers():
    assert TelemetrySettings.from_env({}, "s", "v").propagators == DEFAULT_PROPAGATORS
    fields = load_propagators(DEFAULT_PROPAGATORS).fields
    assert {"traceparent", "tracestate", "baggage", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled"} <= fields


def test_otel_propagators_is_followed():
    settings = TelemetrySettings.from_env({"OTEL_PROPAGATORS": "tracecontext"}, "s", "v")
    assert load_propagators(settings.propagators).fields == {"traceparent", "tracestate"}
    assert load_propagators("b3").fields == {"b3"}
    assert load_propagators("tracecontext,none").fields == set()


def test_an_unknown_propagator_stops_start_up():
    with pytest.raises(SettingsError, match="'jaeger'"):
        load_propagators("tracecontext,jaeger")


# -- /metrics and logs -----------------------------------------------------------------------------

def test_metrics_include_the_process_and_python_collectors(calculator_client):
    families = {f.name for f in text_string_to_metric_families(calculator_client.get("/metrics").get_data(as_text=True))}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"} <= families
    assert {"python_info", "python_gc_objects_collected", "python_gc_collections"} <= families
    assert "http_server_requests" in families


def test_log_time_is_rfc3339_utc_with_milliseconds():
    record = logging.LogRecord("t", logging.INFO, "", 0, "hola", (), None)
    record.created = 1767171903.0429  # 2025-12-31T09:05:03.042Z
    line = json.loads(JsonLineFormatter().format(record))
    assert line["time"] == "2025-12-31T09:05:03.042Z"
    stamp = json.loads(JsonLineFormatter().format(logging.LogRecord("t", logging.INFO, "", 0, "x", (), None)))["time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == timedelta(0) and abs(parsed.timestamp() - time.time()) < 60
