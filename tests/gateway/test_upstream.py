"""The gateway's urllib3 client: one bounded attempt, its failures told apart, the proxy read once."""

import socket

import pytest

from gateway.upstream import CalculatorClient, UpstreamTimeout, UpstreamUnavailable, proxy_for
from tests.inprocess import SilentServer, serving


def echo(environ, start_response):
    """Answers with what it was asked: the request target and two headers."""
    body = f'{{"target": "{environ.get("RAW_URI") or environ["PATH_INFO"]}", "host": "{environ.get("HTTP_HOST")}"}}'
    start_response("200 OK", [("Content-Type", "application/json"), ("X-Calculator-Version", "v1"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    return [body.encode()]


def test_answers_with_status_body_and_lower_case_headers():
    with serving(echo) as base:
        client = CalculatorClient(f"{base}/calcular", timeout=5, pool_size=2)
        answer = client.post(b"{}", {"Content-Type": "application/json"})
        client.close()
    assert answer.status == 200 and answer.is_json
    assert answer.headers["x-calculator-version"] == "v1"
    assert answer.headers["set-cookie"] == "a=1, b=2"  # repeated headers joined, as HTTP allows


def test_reuses_its_connections():
    def client_port(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["REMOTE_PORT"].encode()]

    with serving(client_port) as base:
        client = CalculatorClient(f"{base}/calcular", timeout=5, pool_size=2)
        ports = {client.post(b"{}", {}).body for _ in range(3)}
        client.close()
    assert len(ports) == 1  # one connection, kept alive


def test_a_refused_connection_is_unavailable():
    silent = SilentServer()
    url = silent.url
    silent.close()
    with pytest.raises(UpstreamUnavailable):
        CalculatorClient(f"{url}/calcular", timeout=5, pool_size=1).post(b"{}", {})


def test_no_answer_in_time_is_a_timeout():
    silent = SilentServer()
    try:
        with pytest.raises(UpstreamTimeout):
            CalculatorClient(f"{silent.url}/calcular", timeout=0.2, pool_size=1).post(b"{}", {})
    finally:
        silent.close()


def test_one_attempt_only():
    # A connection closed with no answer: urllib3 would retry it by default; the mesh retries, not us.
    closing = SilentServer(close_at_once=True)
    try:
        with pytest.raises(UpstreamUnavailable):
            CalculatorClient(f"{closing.url}/calcular", timeout=5, pool_size=1).post(b"{}", {})
        assert closing.accepted == 1
    finally:
        closing.close()


def test_goes_through_the_proxy_the_environment_names_read_once(monkeypatch):
    with serving(echo) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        client = CalculatorClient("http://calculator/calcular", timeout=5, pool_size=1)
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # later changes are not read
        answer = client.post(b"{}", {"Content-Type": "application/json"})
    # The proxy gets the absolute URI, and the calculator's name as Host.
    assert answer.body == b'{"target": "http://calculator/calcular", "host": "calculator"}'


def test_an_unreachable_proxy_is_unavailable(monkeypatch):
    silent = SilentServer()
    proxy = silent.url
    silent.close()
    monkeypatch.setenv("HTTP_PROXY", proxy)
    with pytest.raises(UpstreamUnavailable):
        CalculatorClient("http://calculator/calcular", timeout=5, pool_size=1).post(b"{}", {})


def test_a_silent_proxy_is_a_timeout(monkeypatch):
    silent = SilentServer()
    monkeypatch.setenv("HTTP_PROXY", silent.url)
    try:
        with pytest.raises(UpstreamTimeout):
            CalculatorClient("http://calculator/calcular", timeout=0.2, pool_size=1).post(b"{}", {})
    finally:
        silent.close()


def test_proxy_for_follows_no_proxy(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "127.0.0.1:15001")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal")
    assert proxy_for("http://calculator/calcular") == "http://127.0.0.1:15001"
    assert proxy_for("http://calc.internal/calcular") is None
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.delenv("http_proxy", raising=False)
    assert proxy_for("http://calculator/calcular") is None


def test_refuses_a_url_that_is_not_http():
    with pytest.raises(ValueError, match="CALCULATOR_URL"):
        CalculatorClient("ftp://calculator/calcular", timeout=1, pool_size=1)


@pytest.mark.parametrize("through_proxy", [False, True])
def test_its_connections_send_at_once(monkeypatch, through_proxy):
    # urllib3 writes a request's head and body apart, and turns Nagle's algorithm on for proxies:
    # without TCP_NODELAY the body waits for the proxy's delayed ACK (40 ms per call).
    with serving(echo) as base:
        if through_proxy:
            monkeypatch.setenv("HTTP_PROXY", base)
        client = CalculatorClient("http://calculator/calcular" if through_proxy else f"{base}/calcular", timeout=5, pool_size=1)
        connection = client._http.connection_from_url(client.url)._new_conn()  # as the pool makes them
        try:
            connection.connect()
            assert connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        finally:
            connection.close()
            client.close()
