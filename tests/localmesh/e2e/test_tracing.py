"""One request through the ingress gives one trace across the gateway and the calculator:
the trace context crosses both Envoys untouched (neither traces, nor rewrites it)."""

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from localmesh.processes import wait_until
from tests.localmesh.e2e.support import calculate, sidecar_entries
from tests.support import running_mesh

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def traced_mesh(tmp_path_factory, otlp_receiver):
    with running_mesh(
        tmp_path_factory.mktemp("traced-mesh"),
        otlp_endpoint=otlp_receiver.url,
        common_env={"OTEL_BSP_SCHEDULE_DELAY": "100"},
    ) as mesh:
        yield mesh


def test_one_request_through_the_ingress_gives_one_trace(traced_mesh, otlp_receiver):
    answer = calculate(traced_mesh)
    assert answer.status == 200

    def three_spans():
        spans = otlp_receiver.spans_of_trace(answer.trace_id)
        return spans if len(spans) >= 3 else None

    spans = wait_until(three_spans, 15, what="three spans exported")
    by_role = {(resource["service.name"], span.kind): span for resource, span in spans}
    assert len(spans) == 3 and set(by_role) == {
        ("gateway", Span.SPAN_KIND_SERVER),
        ("gateway", Span.SPAN_KIND_CLIENT),
        ("calculator", Span.SPAN_KIND_SERVER),
    }
    gateway_server = by_role[("gateway", Span.SPAN_KIND_SERVER)]
    gateway_client = by_role[("gateway", Span.SPAN_KIND_CLIENT)]
    calculator_server = by_role[("calculator", Span.SPAN_KIND_SERVER)]
    # The client's traceparent crossed the ingress Envoy: the gateway continued its trace...
    entry = wait_until(
        lambda: sidecar_entries(traced_mesh, [answer.trace_id]).get(answer.trace_id), 5, what="access log"
    )
    assert gateway_server.parent_span_id.hex() == answer.span_id
    assert gateway_client.parent_span_id == gateway_server.span_id
    # ...and the gateway's own traceparent crossed its sidecar to the calculator.
    assert calculator_server.parent_span_id == gateway_client.span_id
    assert entry["traceparent"] == f"00-{answer.trace_id}-{gateway_client.span_id.hex()}-01"
    resources = {resource["service.name"]: resource for resource, _ in spans}
    assert resources["calculator"]["service.version"] == answer.version
