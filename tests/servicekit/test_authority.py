"""Which Host values are one authority (a hostname or an IP literal, an optional port)."""

import pytest

from servicekit.authority import is_valid_authority

VALID = [
    "localhost",  # Flask's test client
    "localhost:8080",
    "127.0.0.1:8080",  # any client on the machine, schemathesis
    "10.244.0.7:8080",  # the kubelet's probes and Prometheus's scrapes: the pod's IP and port
    "[fd00:10:244::7]:8080",  # the same on an IPv6 cluster
    "[::1]",
    "calculator",  # the gateway's call, through the mesh
    "calculator.meshcalc.svc.cluster.local:8080",
    "meshcalc.example.",  # a fully qualified name
    "compose_gateway_1",
    "x" * 63 + ".example",
    "host:65535",
]

INVALID = [
    "",
    "a.example,b.example",  # two Host headers joined by a proxy
    "a.example, b.example",
    "evil.example/path",
    "user@evil.example",
    "a b",
    "host:",
    ":8080",
    "host:65536",
    "host:8080:1",
    "[::1",
    "::1",
    "[not:an:ip]",
    "[::1]x",
    "a..b",
    "-leading.example",
    "x" * 64 + ".example",  # a label over 63
    ".".join(["a" * 50] * 6),  # a name over 253
    "münchen.example",
    "host\n",
    "1.2.3",  # a browser reads it as 1.2.0.3
    "999.0.0.1",
    "a.0x7f",
    "1.2.3.4.",
]


@pytest.mark.parametrize("host", VALID)
def test_hosts_and_ip_literals_with_an_optional_port_are_valid(host):
    assert is_valid_authority(host)


@pytest.mark.parametrize("host", INVALID)
def test_anything_else_is_not(host):
    assert not is_valid_authority(host)
