"""The Kubernetes side of the topology: Services (names, ports, selectors) and Deployments (replicas, labels)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from localmesh.translate.errors import Fields, Origin
from localmesh.translate.resources import Resource

DOMAIN_SUFFIX = "svc.cluster.local"
HORIZONTAL_POD_AUTOSCALER = "HorizontalPodAutoscaler"

# Port names (or appProtocol values) whose protocol a local HTTP/1 Envoy cannot
# carry as the cluster would: istiod picks the protocol from this prefix.
_NON_HTTP1 = ("http2", "grpc", "grpc-web", "h2c", "https", "tls", "tcp", "mongo", "mysql", "redis", "udp")


def service_fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.{DOMAIN_SUFFIX}"


def resolve_host(host: str, namespace: str) -> str:
    """istiod's ResolveShortnameToFQDN: a name without dots (and not a wildcard) is a Service of the namespace."""
    host = host.lower()
    if "." in host or "*" in host:
        return host
    return service_fqdn(host, namespace)


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    target_port: int | str


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    ports: tuple[ServicePort, ...]
    selector: dict[str, str] = field(hash=False)
    origin: Origin

    @property
    def fqdn(self) -> str:
        return service_fqdn(self.name, self.namespace)

    def port(self, number: int) -> ServicePort | None:
        return next((port for port in self.ports if port.port == number), None)


@dataclass(frozen=True)
class ContainerPort:
    name: str
    number: int


@dataclass(frozen=True)
class Deployment:
    name: str
    namespace: str
    replicas: int
    labels: dict[str, str] = field(hash=False)
    ports: tuple[ContainerPort, ...]
    origin: Origin

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def container_port(self, target: int | str) -> int | None:
        """The container port a Service targetPort designates (a number, or a named container port)."""
        if isinstance(target, int):
            return target
        return next((port.number for port in self.ports if port.name == target), None)


def _protocol_word(name: str) -> str:
    return name.split("-", 1)[0].lower()


def parse_service(resource: Resource) -> Service:
    origin = resource.origin
    spec = Fields(resource.spec, "spec", origin)
    kind = spec.text("type", "ClusterIP")
    if kind not in ("ClusterIP", "NodePort", "LoadBalancer"):
        raise origin.unsupported("spec.type", kind)
    if spec.text("clusterIP") == "None":
        raise origin.unsupported("spec.clusterIP", "None")
    ports = []
    for port in spec.mappings("ports"):
        number = port.integer("port", required=True, minimum=1)
        name = port.text("name", "")
        protocol = port.text("protocol", "TCP")
        app_protocol = port.text("appProtocol")
        if protocol != "TCP":
            raise origin.unsupported(port.at("protocol"), protocol)
        if app_protocol is not None and app_protocol.lower() != "http":
            raise origin.unsupported(port.at("appProtocol"), app_protocol)
        if app_protocol is None and _protocol_word(name) in _NON_HTTP1:
            raise origin.invalid(
                port.at("name"),
                f"{name!r} names a protocol other than HTTP/1.1, which the local mesh does not carry",
            )
        target = port.raw("targetPort", number)
        if isinstance(target, bool) or not isinstance(target, (int, str)):
            raise origin.invalid(port.at("targetPort"), f"must be a port number or name, not {target!r}")
        ports.append(ServicePort(name, number, target))
    if not ports:
        raise origin.invalid("spec.ports", "a Service needs at least one port")
    return Service(resource.name, resource.namespace, tuple(ports), spec.string_map("selector"), origin)


def autoscaler_target(namespace: str, spec: Mapping[str, Any]) -> tuple[tuple[str, str, str], int] | None:
    """What a HorizontalPodAutoscaler's ``spec`` scales, as (kind, namespace, name), and its minReplicas
    (1 when unset, the API's default); None when it names no target."""
    target = spec.get("scaleTargetRef")
    if not isinstance(target, Mapping) or not target.get("kind") or not target.get("name"):
        return None
    minimum = spec.get("minReplicas", 1)
    if isinstance(minimum, bool) or not isinstance(minimum, int):
        minimum = 1  # the schema checks name it; the scale is the default's
    return (str(target["kind"]), namespace, str(target["name"])), minimum


def with_autoscalers(resources: Iterable[Resource]) -> list[Resource]:
    """The resources, each Deployment with the minReplicas of the HorizontalPodAutoscaler that targets it.

    An autoscaler owns its target's scale: the manifests leave ``spec.replicas`` out (each
    ``kubectl apply`` would reset the scale to it), Kubernetes starts one pod and the
    autoscaler raises it to minReplicas, where it stays when idle.
    """
    resources = list(resources)
    targets = (autoscaler_target(r.namespace, r.spec) for r in resources if r.kind == HORIZONTAL_POD_AUTOSCALER)
    minimums = dict(target for target in targets if target is not None)
    return [
        replace(r, autoscaler_min_replicas=minimums.get(r.key)) if r.kind == "Deployment" else r
        for r in resources
    ]


def replicas_at_rest(resource: Resource) -> int:
    """The pods a Deployment runs when idle: its autoscaler's minReplicas, else ``spec.replicas`` (default 1)."""
    if resource.autoscaler_min_replicas is not None:
        return resource.autoscaler_min_replicas
    return Fields(resource.spec, "spec", resource.origin).integer("replicas", 1)


def parse_deployment(resource: Resource) -> Deployment:
    origin = resource.origin
    spec = Fields(resource.spec, "spec", origin)
    replicas = replicas_at_rest(resource)
    template = spec.mapping("template")
    if template is None:
        raise origin.invalid("spec.template", "is required")
    metadata = template.mapping("metadata")
    labels = metadata.string_map("labels") if metadata else {}
    pod = template.mapping("spec")
    ports = []
    for container in pod.mappings("containers") if pod else []:
        for port in container.mappings("ports"):
            ports.append(ContainerPort(port.text("name", ""), port.integer("containerPort", required=True, minimum=1)))
    return Deployment(resource.name, resource.namespace, replicas, labels, tuple(ports), origin)
