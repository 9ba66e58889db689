import json
import logging

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from calculator.app import create_app
from calculator.config import CalculatorSettings
from servicekit.lifecycle import DrainFlag
from servicekit.telemetry import TelemetrySettings, json_log_handler, trace_exemplar, tracer_provider


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
