"""The CLIENT span of the gateway's urllib3 calls, to the HTTP semantic conventions, over real HTTP."""

import pytest
import urllib3
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from servicekit.client_tracing import NoRetries, exception_type, instrument_urllib3
from servicekit.telemetry import TelemetrySettings, tracer_provider
from tests.inprocess import CLIENT_REQUIRED, SilentServer, missing, serving


def answering(status: int):
    def app(environ, start_response):
        start_response(f"{status} X", [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]

    return app


@pytest.fixture(scope="module", autouse=True)
def traced():
    instrument_urllib3(tracer_provider(TelemetrySettings("test", "v0")))


def call(url: str, timeout: float = 5.0, proxy: str | None = None):
    options = dict(retries=NoRetries(), timeout=urllib3.Timeout(connect=timeout, read=timeout))
    http = urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
    with trace.get_tracer("test").start_as_current_span("parent") as parent:
        try:
            return parent, http.urlopen("POST", url, body=b"{}", headers={"Content-Type": "application/json"})
        except urllib3.exceptions.HTTPError as error:
            return parent, error


def client_span(spans):
    [span] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    return span


def test_an_answered_call(spans):
    with serving(answering(200)) as base:
        parent, response = call(f"{base}/calcular?x=1")
    assert response.status == 200
    span = client_span(spans)
    assert span.name == "POST" and span.parent.span_id == parent.get_span_context().span_id
    assert missing(span, CLIENT_REQUIRED + ("http.response.status_code",)) == []
    port = int(base.rsplit(":", 1)[1])
    assert dict(span.attributes) == {
        "http.request.method": "POST",
        "url.full": f"{base}/calcular?x=1",
        "server.address": "127.0.0.1",
        "server.port": port,
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("status", [404, 503])
def test_an_error_status_is_an_error(spans, status):
    with serving(answering(status)) as base:
        call(f"{base}/calcular")
    span = client_span(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == str(status)


def test_a_refused_connection_is_an_error_with_its_type(spans):
    listener = SilentServer()
    url = listener.url
    listener.close()  # nobody listens there now
    _, error = call(f"{url}/calcular")
    assert isinstance(error, urllib3.exceptions.NewConnectionError)
    span = client_span(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "urllib3.exceptions.NewConnectionError"
    assert [e.attributes["exception.type"] for e in span.events] == ["urllib3.exceptions.NewConnectionError"]
    assert missing(span, CLIENT_REQUIRED) == []


def test_a_timeout_is_an_error_with_its_type(spans):
    silent = SilentServer()
    try:
        _, error = call(f"{silent.url}/calcular", timeout=0.2)
    finally:
        silent.close()
    assert isinstance(error, urllib3.exceptions.ReadTimeoutError)
    span = client_span(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "urllib3.exceptions.ReadTimeoutError"
    assert "http.response.status_code" not in span.attributes


def test_behind_a_proxy_the_server_is_the_one_asked_for(spans):
    # The in-process server plays the proxy (the sidecar): it serves the absolute URI it is sent.
    with serving(answering(200)) as proxy:
        _, response = call("http://calculator/calcular", proxy=proxy)
    assert response.status == 200
    span = client_span(spans)
    assert span.attributes["url.full"] == "http://calculator/calcular"
    assert (span.attributes["server.address"], span.attributes["server.port"]) == ("calculator", 80)


def test_exception_type_is_the_qualified_class_name():
    assert exception_type(urllib3.exceptions.ProtocolError("x")) == "urllib3.exceptions.ProtocolError"
    assert exception_type(TimeoutError()) == "TimeoutError"
