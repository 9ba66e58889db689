"""Istio Gateway: the servers (port, hosts) of the ingress gateway."""

from __future__ import annotations

from dataclasses import dataclass, field

from localmesh.translate.errors import Fields, Origin
from localmesh.translate.resources import Resource

# The one ingress gateway: its pod labels and namespace, as Istio installs it.
INGRESS_SELECTOR = {"istio": "ingressgateway"}
INGRESS_NAMESPACE = "istio-system"


@dataclass(frozen=True)
class GatewayHost:
    """One ``[namespace/]host`` of a server: which VirtualServices may bind, for which host."""

    namespace: str  # "*" for any namespace, else the one namespace allowed
    host: str

    def admits(self, vs_namespace: str) -> bool:
        return self.namespace in ("*", vs_namespace)


@dataclass(frozen=True)
class Server:
    port: int
    port_name: str
    hosts: tuple[GatewayHost, ...]


@dataclass(frozen=True)
class Gateway:
    name: str
    namespace: str
    servers: tuple[Server, ...]
    selector: dict[str, str] = field(hash=False)
    origin: Origin

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _gateway_host(text: str, namespace: str) -> GatewayHost:
    scope, _, host = text.rpartition("/")
    if not scope:
        scope = "*"
    elif scope == ".":
        scope = namespace
    return GatewayHost(scope, host.lower())


def parse_gateway(resource: Resource) -> Gateway:
    origin = resource.origin
    spec = Fields(resource.spec, "spec", origin)
    selector = spec.string_map("selector")
    if selector != INGRESS_SELECTOR:
        # The local ingress Envoy plays the one default ingress gateway.
        raise origin.unsupported("spec.selector", selector)
    servers = []
    for server in spec.mappings("servers"):
        port = server.mapping("port")
        if port is None:
            raise origin.invalid(server.at("port"), "is required")
        number = port.integer("number", required=True, minimum=1)
        protocol = port.text("protocol", required=True)
        if protocol.upper() != "HTTP":
            raise origin.unsupported(port.at("protocol"), protocol)
        port_name = port.text("name", "")
        port.finish()
        hosts = server.strings("hosts")
        if not hosts:
            raise origin.invalid(server.at("hosts"), "a server needs at least one host")
        server.text("name")
        server.finish()
        servers.append(Server(number, port_name, tuple(_gateway_host(h, resource.namespace) for h in hosts)))
    if not servers:
        raise origin.invalid("spec.servers", "a Gateway needs at least one server")
    spec.finish()
    return Gateway(resource.name, resource.namespace, tuple(servers), selector, origin)
