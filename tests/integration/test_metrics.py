"""Metrics scraped from the real processes equal the traffic sent."""

from collections import Counter

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from tests.support import delta, get, post_json, scrape

pytestmark = pytest.mark.processes


def test_counters_move_by_exactly_the_traffic_sent(stack):
    gateway, calculator = stack["gateway"], stack["calculator"]
    bodies = (
        [{"operacion": "sumar", "numero1": 1, "numero2": 2}] * 7
        + [{"operacion": "dividir", "numero1": 1, "numero2": 0}] * 3
        + [{"operacion": "raiz", "numero1": 1, "numero2": 0}] * 2
    )
    before_gw, before_calc = scrape(gateway), scrape(calculator)
    statuses = Counter(post_json(f"{gateway.url}/calcular", body)[0] for body in bodies)
    after_gw, after_calc = scrape(gateway), scrape(calculator)

    assert statuses == {200: 7, 400: 5}
    for service_before, service_after in ((before_gw, after_gw), (before_calc, after_calc)):
        common = {"name": "http_server_requests_total", "method": "POST", "route": "/calcular"}
        name = common.pop("name")
        assert delta(service_before, service_after, name, status="200", **common) == 7
        assert delta(service_before, service_after, name, status="400", **common) == 5
        assert (
            delta(service_before, service_after, "http_server_request_duration_seconds_count", method="POST", route="/calcular")
            == 12
        )
    ops = "calculator_operations_total"
    assert delta(before_calc, after_calc, ops, operation="sumar", outcome="ok", service_version="v1") == 7
    assert delta(before_calc, after_calc, ops, operation="dividir", outcome="rejected", service_version="v1") == 3
    assert delta(before_calc, after_calc, ops, operation="unknown", outcome="rejected", service_version="v1") == 2
    upstream = "gateway_upstream_requests_total"
    assert delta(before_gw, after_gw, upstream, status="200", failure="") == 7
    assert delta(before_gw, after_gw, upstream, status="400", failure="") == 5
    assert delta(before_gw, after_gw, "gateway_upstream_request_duration_seconds_count", status="200", failure="") == 7


@pytest.mark.parametrize(
    "service, histogram",
    [
        ("calculator", "http_server_request_duration_seconds_bucket"),
        ("gateway", "http_server_request_duration_seconds_bucket"),
        ("gateway", "gateway_upstream_request_duration_seconds_bucket"),
    ],
)
def test_latency_histograms_carry_trace_id_exemplars(stack, service, histogram):
    post_json(f"{stack['gateway'].url}/calcular", {"operacion": "sumar", "numero1": 1, "numero2": 2})
    status, headers, body = get(
        f"{stack[service].url}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert headers["content-type"].startswith("application/openmetrics-text")
    exemplars = [
        s.exemplar
        for family in parse_openmetrics(body.decode())
        for s in family.samples
        if s.name == histogram and s.exemplar is not None
    ]
    assert exemplars, f"no exemplar on {histogram} of {service}"
    assert all(len(e.labels["trace_id"]) == 32 for e in exemplars)
