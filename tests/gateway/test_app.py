"""The gateway as built by its factory, in front of a calculator over real HTTP in this process."""

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from calculator.app import create_app as create_calculator
from calculator.config import CalculatorSettings
from gateway.app import create_app
from gateway.config import GatewaySettings
from servicekit.lifecycle import DrainFlag
from tests.inprocess import CLIENT_REQUIRED, SERVER_ROUTED, SilentServer, missing, serving

SUMAR = {"operacion": "sumar", "numero1": 1, "numero2": 2}


@pytest.fixture
def calculator_url(tmp_path):
    app = create_calculator(CalculatorSettings(results_file=tmp_path / "r.txt"), environ={}, drain_flag=DrainFlag())
    with serving(app) as base:
        yield f"{base}/calcular"


def gateway(calculator_url: str, **settings):
    settings = GatewaySettings(calculator_url=calculator_url, **settings)
    return create_app(settings, environ={}, drain_flag=DrainFlag()).test_client()


def test_one_trace_from_the_gateway_to_the_calculator(calculator_url, spans, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-request-id,x-b3-traceid,x-b3-spanid,x-b3-sampled,traceparent")
    trace_id, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    response = gateway(calculator_url).post(
        "/calcular", json=SUMAR, headers={"traceparent": f"00-{trace_id}-{caller_span}-01", "x-request-id": "req-1"}
    )
    assert response.status_code == 200
    finished = spans.get_finished_spans()
    assert sorted((s.name, s.kind.name) for s in finished) == [
        ("POST", "CLIENT"),
        ("POST /calcular", "SERVER"),
        ("POST /calcular", "SERVER"),
    ]
    [client] = [s for s in finished if s.kind is SpanKind.CLIENT]
    [gateway_server] = [s for s in finished if s.kind is SpanKind.SERVER and s.parent.span_id == int(caller_span, 16)]
    [calculator_server] = [s for s in finished if s.kind is SpanKind.SERVER and s is not gateway_server]
    assert {format(s.context.trace_id, "032x") for s in finished} == {trace_id}
    assert client.parent.span_id == gateway_server.context.span_id
    assert calculator_server.parent.span_id == client.context.span_id and calculator_server.parent.is_remote
    assert missing(gateway_server, SERVER_ROUTED) == missing(calculator_server, SERVER_ROUTED) == []
    assert missing(client, CLIENT_REQUIRED + ("http.response.status_code",)) == []
    assert client.attributes["url.full"] == calculator_url
    # What reached the calculator: W3C and B3 for the client span, x-request-id copied for Envoy's logs.
    headers = {k.removeprefix("http.request.header."): v for k, v in calculator_server.attributes.items() if ".header." in k}
    client_span_id = format(client.context.span_id, "016x")
    assert headers == {
        "traceparent": (f"00-{trace_id}-{client_span_id}-01",),
        "x-b3-traceid": (trace_id,),
        "x-b3-spanid": (client_span_id,),
        "x-b3-sampled": ("1",),
        "x-request-id": ("req-1",),
    }


def _upstream_samples(client, name="gateway_upstream_requests_total"):
    text = client.get("/metrics").get_data(as_text=True)
    return {
        (s.labels["status"], s.labels["failure"]): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name
    }


def test_an_answer_is_counted_by_status_with_no_failure(calculator_url, spans):
    client = gateway(calculator_url)
    client.post("/calcular", json=SUMAR)
    client.post("/calcular", json={"operacion": "raiz"})
    assert _upstream_samples(client) == {("200", ""): 1.0, ("400", ""): 1.0}


def test_no_answer_is_counted_by_failure_with_no_status(spans):
    silent = SilentServer()
    try:
        slow = gateway(f"{silent.url}/calcular", calculator_timeout_seconds=0.2)
        assert slow.post("/calcular", json=SUMAR).status_code == 504
    finally:
        silent.close()
    refused = gateway(f"{silent.url}/calcular")  # closed now: nobody listens
    assert refused.post("/calcular", json=SUMAR).status_code == 503
    assert _upstream_samples(slow) == {("", "timeout"): 1.0}
    assert _upstream_samples(refused) == {("", "unavailable"): 1.0}
    assert _upstream_samples(refused, "gateway_upstream_request_duration_seconds_count") == {("", "unavailable"): 1.0}
    # The client spans say it too, in the conventions' words.
    failed = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert [s.attributes["error.type"] for s in failed] == [
        "urllib3.exceptions.ReadTimeoutError",
        "urllib3.exceptions.NewConnectionError",
    ]
    assert all(s.status.status_code is StatusCode.ERROR and s.events[0].name == "exception" for s in failed)


def test_the_upstream_exemplar_is_the_requests_trace(calculator_url, spans):
    client = gateway(calculator_url)
    client.post("/calcular", json=SUMAR)
    [server] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER and s.parent is None]
    text = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}).get_data(as_text=True)
    exemplars = {
        s.exemplar.labels["trace_id"]
        for f in parse_openmetrics(text)
        for s in f.samples
        if s.name == "gateway_upstream_request_duration_seconds_bucket" and s.exemplar
    }
    assert exemplars == {format(server.context.trace_id, "032x")}
