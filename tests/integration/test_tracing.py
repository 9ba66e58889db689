"""One request through the gateway gives one trace, parented across both services."""

import uuid

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from localmesh.processes import wait_until
from tests.support import post_json

pytestmark = pytest.mark.processes


def _attribute(span, key):
    """A span attribute as a string; captured headers are one-element string arrays."""
    for attribute in span.attributes:
        if attribute.key == key:
            value = attribute.value
            if value.HasField("array_value"):
                return value.array_value.values[0].string_value
            return value.string_value
    return None


def test_one_trace_across_gateway_and_calculator(stack, otlp_receiver):
    trace_id = uuid.uuid4().hex
    client_span_id = uuid.uuid4().hex[:16]
    request_id = str(uuid.uuid4())
    status, _, _ = post_json(
        f"{stack['gateway'].url}/calcular",
        {"operacion": "sumar", "numero1": 1, "numero2": 2},
        {"traceparent": f"00-{trace_id}-{client_span_id}-01", "x-request-id": request_id},
    )
    assert status == 200

    def three_spans():
        spans = otlp_receiver.spans_of_trace(trace_id)
        return spans if len(spans) >= 3 else None

    spans = wait_until(three_spans, 15, what="three spans exported")
    by_role = {}
    for resource, span in spans:
        by_role[(resource["service.name"], span.kind)] = span
    assert set(by_role) == {
        ("gateway", Span.SPAN_KIND_SERVER),
        ("gateway", Span.SPAN_KIND_CLIENT),
        ("calculator", Span.SPAN_KIND_SERVER),
    }
    gateway_server = by_role[("gateway", Span.SPAN_KIND_SERVER)]
    gateway_client = by_role[("gateway", Span.SPAN_KIND_CLIENT)]
    calculator_server = by_role[("calculator", Span.SPAN_KIND_SERVER)]
    assert gateway_server.parent_span_id.hex() == client_span_id
    assert gateway_client.parent_span_id == gateway_server.span_id
    assert calculator_server.parent_span_id == gateway_client.span_id
    resources = {r["service.name"]: r for r, _ in spans}
    assert resources["calculator"]["service.version"] == "v1"

    # B3 for Envoy's tracer and x-request-id for its access logs reached the calculator,
    # captured under the names the conventions give them.
    assert _attribute(calculator_server, "http.request.header.x-b3-traceid") == trace_id
    assert _attribute(calculator_server, "http.request.header.x-b3-spanid") == gateway_client.span_id.hex()
    assert _attribute(calculator_server, "http.request.header.x-request-id") == request_id
    assert not [a.key for a in calculator_server.attributes if ".header." in a.key and "_" in a.key]
    # The spans in the stable HTTP conventions, as the gunicorn processes make them.
    assert gateway_client.name == "POST" and calculator_server.name == "POST /calcular"
    assert _attribute(gateway_client, "url.full") == stack["calculator"].url + "/calcular"
    assert _attribute(calculator_server, "http.route") == "/calcular"
    assert {a.key for a in gateway_client.attributes} >= {"http.request.method", "server.address", "server.port", "http.response.status_code"}


def test_canary_header_reaches_the_calculator(stack, otlp_receiver):
    trace_id = uuid.uuid4().hex
    post_json(
        f"{stack['gateway'].url}/calcular",
        {"operacion": "sumar", "numero1": 1, "numero2": 2},
        {"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01", "x-canary": "always"},
    )
    def calculator_span():
        return next((s for r, s in otlp_receiver.spans_of_trace(trace_id) if r["service.name"] == "calculator"), None)

    calculator_server = wait_until(calculator_span, 15, what="the calculator's span")
    assert _attribute(calculator_server, "http.request.header.x-canary") == "always"
