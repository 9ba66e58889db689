"""The calculator's AuthorizationPolicy enforced by a real Envoy, from the same YAML, behind real mTLS.

An inbound sidecar (``localmesh.translate.authorization``) in front of a real
calculator, with certificates from a throwaway mesh CA for three callers: the
gateway's ServiceAccount, the calculator's own, and one from another CA. Only
the gateway's identity may call, and only ``POST /calcular``.
"""

from __future__ import annotations

import http.client
import json
import ssl

import pytest

from localmesh.envoy import EnvoyProcess
from localmesh.loader import Layout, load_mesh
from localmesh.processes import free_ports
from localmesh.translate import read_manifests
from localmesh.translate.authorization import policies_for, spiffe_id
from localmesh.translate.bootstrap import inbound_bootstrap
from tests.localmesh.certificates import MeshCA
from tests.support import CALCULATOR_APP, ROOT
from tests.tools import needs_envoy

pytestmark = [
    pytest.mark.processes,
    needs_envoy,
]
BODY = json.dumps({"operacion": "sumar", "numero1": 2, "numero2": 3})
DENIED = b"RBAC: access denied"


@pytest.fixture(scope="module")
def inbound(start_service, tmp_path_factory):
    directory = tmp_path_factory.mktemp("inbound")
    ca = MeshCA(directory / "ca")
    identities = {
        sa: ca.issue(sa, spiffe_id("meshcalc", sa)) for sa in ("gateway", "calculator")
    }
    # The gateway's name, but not from the mesh's CA.
    other_ca = MeshCA(directory / "other-ca", "another-root")
    identities["foreign"] = other_ca.issue("foreign", spiffe_id("meshcalc", "gateway"))
    calculator = start_service("authz-calculator", CALCULATOR_APP)
    resources = load_mesh(Layout(ROOT))
    labels = read_manifests(resources).deployments["meshcalc/calculator-v1"].labels
    listen_port, admin_port = free_ports(2, exclude=[calculator.spec.port])
    envoy = EnvoyProcess("calculator-v1-0-inbound", directory, admin_port)
    envoy.start(
        inbound_bootstrap(
            policies_for(resources, "meshcalc", labels),
            workload="calculator-v1.meshcalc",
            app_port=calculator.spec.port,
            listen_port=listen_port,
            admin_port=admin_port,
            certificate=identities["calculator"],
            access_log_path=str(directory / "inbound-access.log"),
        )
    )
    try:
        envoy.wait_ready()
        yield envoy, listen_port, identities
    finally:
        envoy.stop()


def call(port: int, identity: dict | None, method="POST", path="/calcular", ca: str | None = None):
    """One request over mTLS as ``identity`` (None: no client certificate); (status, body)."""
    context = ssl.create_default_context(cafile=ca or (identity or {}).get("ca"))
    # The server presents a SPIFFE URI, no DNS name: check the chain, as Istio checks the URI SAN.
    context.check_hostname = False
    if identity is not None:
        context.load_cert_chain(identity["cert"], identity["key"])
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        body = BODY if method == "POST" else None
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_gateways_identity_may_post_calcular(inbound):
    envoy, port, identities = inbound
    status, body = call(port, identities["gateway"])
    assert status == 200 and json.loads(body)["resultado"] == 5


def test_the_gateways_identity_may_do_nothing_else(inbound):
    envoy, port, identities = inbound
    for method, path in (("GET", "/resultados"), ("GET", "/metrics"), ("POST", "/otra")):
        assert call(port, identities["gateway"], method, path) == (403, DENIED), (method, path)


def test_any_other_identity_is_refused(inbound):
    envoy, port, identities = inbound
    before = envoy.stats("http.inbound_0.0.0.0_").items()
    assert call(port, identities["calculator"]) == (403, DENIED)
    denied = {k: v for k, v in envoy.stats("http.inbound_0.0.0.0_").items() if k.endswith("rbac.denied")}
    assert sum(denied.values()) > sum(v for k, v in before if k.endswith("rbac.denied"))


@pytest.mark.parametrize("who", ["no certificate", "a certificate from another CA"])
def test_without_a_mesh_certificate_there_is_no_connection(inbound, who):
    envoy, port, identities = inbound
    identity = None if who == "no certificate" else identities["foreign"]
    # PeerAuthentication STRICT: the handshake fails (TLS 1.3 may report it at the first read).
    with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
        call(port, identity, ca=identities["gateway"]["ca"])
