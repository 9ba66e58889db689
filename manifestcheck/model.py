"""What the checks read and what they report: manifests, findings, pod templates, label selectors."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Which workload an autoscaler scales, and how far down: read as the local mesh reads it.
from localmesh.translate.kube import HORIZONTAL_POD_AUTOSCALER, autoscaler_target

DEFAULT_NAMESPACE = "default"
CLUSTER_DOMAIN = "svc.cluster.local"


@dataclass(frozen=True)
class Finding:
    """One problem: which check saw it, in which file, resource and field, and why it matters."""

    check: str
    file: str
    resource: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.resource}: {self.field}: {self.message} [{self.check}]"


@dataclass(frozen=True)
class Manifest:
    """One parsed YAML document, with its file and the namespace a kustomization gives it."""

    source: str
    body: Mapping[str, Any] = field(hash=False)
    default_namespace: str = DEFAULT_NAMESPACE

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion") or "")

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind") or "")

    @property
    def metadata(self) -> Mapping[str, Any]:
        return mapping(self.body.get("metadata"))

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or "")

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or self.default_namespace)

    @property
    def spec(self) -> Mapping[str, Any]:
        return mapping(self.body.get("spec"))

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    @property
    def is_istio(self) -> bool:
        return self.group.endswith("istio.io")

    def finding(self, check: str, field_path: str, message: str) -> Finding:
        return Finding(check, self.source, self.ref, field_path, message)


def mapping(value: Any) -> Mapping[str, Any]:
    """The value if it is a mapping, else an empty one: checks read malformed input without crashing."""
    return value if isinstance(value, Mapping) else {}


def sequence(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else []


def of_kind(manifests: Iterable[Manifest], *kinds: str) -> list[Manifest]:
    return [manifest for manifest in manifests if manifest.kind in kinds]


def resolve_host(host: str, namespace: str) -> str:
    """A Service host as istiod resolves it: a short name is a Service of the namespace."""
    host = host.lower()
    if "*" in host:
        return host
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{namespace}.{CLUSTER_DOMAIN}"
    if len(parts) == 2:
        return f"{host}.{CLUSTER_DOMAIN}"
    if len(parts) == 3 and parts[2] == "svc":
        return f"{host}.cluster.local"
    return host


def service_fqdn(manifest: Manifest) -> str:
    return f"{manifest.name}.{manifest.namespace}.{CLUSTER_DOMAIN}"


def services_by_fqdn(manifests: Iterable[Manifest]) -> dict[str, Manifest]:
    return {service_fqdn(service): service for service in of_kind(manifests, "Service")}


@dataclass(frozen=True)
class PodTemplate:
    """The pods a workload (Deployment...) makes: what selectors and policies are matched against."""

    owner: Manifest
    labels: Mapping[str, str] = field(hash=False)
    annotations: Mapping[str, str] = field(hash=False)
    spec: Mapping[str, Any] = field(hash=False)
    replicas: int  # when idle: its autoscaler's minReplicas, else its spec.replicas
    path: str = "spec.template"
    autoscaler: Manifest | None = None  # the HorizontalPodAutoscaler that owns its scale

    @property
    def namespace(self) -> str:
        return self.owner.namespace

    def containers(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Each app container with its field path."""
        for index, container in enumerate(sequence(self.spec.get("containers"))):
            yield f"{self.path}.spec.containers[{index}]", mapping(container)

    def container_named(self, name: str) -> Mapping[str, Any] | None:
        return next((c for _, c in self.containers() if c.get("name") == name), None)

    def finding(self, check: str, field_path: str, message: str) -> Finding:
        return self.owner.finding(check, field_path, message)


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")


def autoscalers_by_target(manifests: Iterable[Manifest]) -> dict[tuple[str, str, str], tuple[Manifest, int]]:
    """Each HorizontalPodAutoscaler by the (kind, namespace, name) it scales, with its minReplicas."""
    found = {}
    for autoscaler in of_kind(manifests, HORIZONTAL_POD_AUTOSCALER):
        target = autoscaler_target(autoscaler.namespace, autoscaler.spec)
        if target is not None:
            found[target[0]] = (autoscaler, target[1])
    return found


def pod_templates(manifests: Iterable[Manifest]) -> list[PodTemplate]:
    manifests = list(manifests)
    autoscalers = autoscalers_by_target(manifests)
    templates = []
    for manifest in of_kind(manifests, *WORKLOAD_KINDS):
        template = mapping(manifest.spec.get("template"))
        metadata = mapping(template.get("metadata"))
        autoscaler, replicas = autoscalers.get(manifest.key, (None, manifest.spec.get("replicas", 1)))
        templates.append(
            PodTemplate(
                owner=manifest,
                labels={str(k): str(v) for k, v in mapping(metadata.get("labels")).items()},
                annotations={str(k): str(v) for k, v in mapping(metadata.get("annotations")).items()},
                spec=mapping(template.get("spec")),
                replicas=replicas if isinstance(replicas, int) else 1,
                autoscaler=autoscaler,
            )
        )
    return templates


def labels_match(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A plain map selector (Service, Istio subsets): every pair present. Empty selects nothing here."""
    return bool(selector) and all(labels.get(str(k)) == str(v) for k, v in selector.items())


def label_selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Kubernetes LabelSelector (matchLabels and matchExpressions); empty selects nothing here."""
    match_labels = mapping(selector.get("matchLabels"))
    expressions = sequence(selector.get("matchExpressions"))
    if not match_labels and not expressions:
        return False
    if any(labels.get(str(k)) != str(v) for k, v in match_labels.items()):
        return False
    for expression in expressions:
        expression = mapping(expression)
        key, operator = str(expression.get("key")), expression.get("operator")
        values = [str(v) for v in sequence(expression.get("values"))]
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """The container's plain env values (valueFrom entries are not known offline)."""
    env = {}
    for entry in sequence(container.get("env")):
        entry = mapping(entry)
        if "value" in entry:
            env[str(entry.get("name"))] = str(entry["value"])
    return env


def container_port_numbers(container: Mapping[str, Any]) -> dict[str, int]:
    """Declared container ports: name (or str(number)) -> number."""
    ports = {}
    for port in sequence(container.get("ports")):
        port = mapping(port)
        number = port.get("containerPort")
        if isinstance(number, int):
            ports[str(number)] = number
            if port.get("name"):
                ports[str(port["name"])] = number
    return ports
