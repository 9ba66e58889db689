"""What both services check of every request (servicekit.inbound): the Host header, the body's
size whatever its framing, and no redirect built from the request. Through each app's WSGI
interface; tests/integration/test_inbound_limits.py does the same against real gunicorn."""

import io
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import EnvironBuilder, run_wsgi_app

from calculator.app import create_app as create_calculator
from calculator.config import CalculatorSettings
from gateway.app import create_app as create_gateway
from gateway.config import GatewaySettings
from servicekit.errors import MESSAGES
from servicekit.inbound import MSG_INVALID_HOST
from servicekit.lifecycle import DrainFlag

LIMIT = 1024  # MAX_REQUEST_BYTES's default, the settings' value in both services
CALCULATION = b'{"operacion": "sumar", "numero1": 2, "numero2": 3}'


@pytest.fixture(params=["calculator", "gateway"])
def app(request, tmp_path):
    if request.param == "calculator":
        return create_calculator(CalculatorSettings(results_file=tmp_path / "r.txt"), environ={}, drain_flag=DrainFlag())
    # Nothing listens on port 9: a request that reached the calculator would be a 503.
    settings = GatewaySettings(calculator_url="http://127.0.0.1:9/calcular")
    return create_gateway(settings, environ={}, drain_flag=DrainFlag())


def call(app, environ: dict) -> tuple[int, dict, dict]:
    app_iter, status, headers = run_wsgi_app(app, environ, buffered=True)
    body = b"".join(app_iter)
    return int(status.split()[0]), dict(headers), json.loads(body)


def padded(size: int) -> bytes:
    """The calculation, with spaces up to ``size`` bytes: valid JSON of exactly that size."""
    return CALCULATION + b" " * (size - len(CALCULATION))


# -- Host -------------------------------------------------------------------------------------------

PROBE_HOSTS = ["localhost", "10.244.0.7:8080", "[fd00:10:244::7]:8080", "calculator.meshcalc.svc.cluster.local"]
BAD_HOSTS = ["a.example,b.example", "evil.example/x", "a b", "host:99999", ""]


@pytest.mark.parametrize("host", PROBE_HOSTS)
@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_scrapes_answer_the_hosts_kubelet_and_prometheus_send(app, path, host):
    assert app.test_client().get(path, headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", BAD_HOSTS)
@pytest.mark.parametrize("method, path", [("GET", "/healthz"), ("GET", "/metrics"), ("POST", "/calcular"), ("GET", "/no-existe")])
def test_a_host_that_is_not_one_authority_is_a_json_400(app, method, path, host):
    response = app.test_client().open(path, method=method, headers={"Host": host}, data=CALCULATION, content_type="application/json")
    assert (response.status_code, response.get_json()) == (400, {"error": MSG_INVALID_HOST})


def test_the_refusal_is_counted(app):
    client = app.test_client()
    client.get("/healthz", headers={"Host": "a.example,b.example"})
    text = client.get("/metrics").get_data(as_text=True)
    counted = {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "http_server_requests_total"
    }
    assert counted[("/healthz", "400")] == 1.0


def test_no_host_at_all_is_served(app):
    # HTTP/1.0 may send none: werkzeug then uses the server's own address.
    environ = EnvironBuilder(path="/healthz").get_environ()
    del environ["HTTP_HOST"]
    assert call(app, environ)[0] == 200


# -- redirects --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/static//app.js", "//healthz", "/metrics//", "/static//style.css"])
def test_a_path_with_doubled_slashes_is_a_404_never_a_redirect_to_the_host_sent(app, path):
    response = app.test_client().get(path, headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "Location" not in response.headers
    assert response.get_json() == {"error": MESSAGES[404]}


# -- the body's size, whatever its framing ---------------------------------------------------------


def unframed(body: bytes) -> dict:
    """A POST /calcular whose body has no Content-Length, as gunicorn passes a chunked one: the
    stream ends where the body does (wsgi.input_terminated)."""
    environ = EnvironBuilder(path="/calcular", method="POST", content_type="application/json").get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BufferedReader(io.BytesIO(body))
    environ["wsgi.input_terminated"] = True
    return environ


def test_an_unframed_body_over_the_limit_is_a_413_not_cut_at_the_limit(app):
    # Cut at 1024 bytes, this body was valid JSON, and a 200.
    status, _, body = call(app, unframed(padded(LIMIT + 50)))
    assert (status, body) == (413, {"error": MESSAGES[413]})
    assert call(app, unframed(padded(LIMIT + 1)))[0] == 413
    assert call(app, unframed(padded(1 << 20)))[0] == 413


@pytest.mark.parametrize("size", [len(CALCULATION), LIMIT])
def test_an_unframed_body_up_to_the_limit_is_read_whole(tmp_path, size):
    app = create_calculator(CalculatorSettings(results_file=tmp_path / "r.txt"), environ={}, drain_flag=DrainFlag())
    status, _, body = call(app, unframed(padded(size)))
    assert (status, body["resultado"]) == (200, 5)


@pytest.mark.parametrize("size, status", [(LIMIT, 200), (LIMIT + 1, 413)])
def test_a_content_length_body_at_and_past_the_limit(tmp_path, size, status):
    app = create_calculator(CalculatorSettings(results_file=tmp_path / "r.txt"), environ={}, drain_flag=DrainFlag())
    response = app.test_client().post("/calcular", data=padded(size), content_type="application/json")
    assert response.status_code == status

