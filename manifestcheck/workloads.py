"""Each workload's pods: hardened, probed, bounded, observable, and stopped gracefully."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from manifestcheck.model import (
    Finding,
    Manifest,
    PodTemplate,
    container_env,
    container_port_numbers,
    label_selector_matches,
    mapping,
    of_kind,
    pod_templates,
    sequence,
)
from servicekit import serving_defaults

# The sidecar's UID: iptables lets its traffic bypass the proxy.
PROXY_UID = 1337
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
METRICS_PATH = "/metrics"
# servicekit/gunicorn_conf.py's defaults, used where the env does not set them: read from the
# module that owns them, so a changed default cannot leave the checks behind.
GUNICORN_DEFAULTS = {
    name: float(getattr(serving_defaults, name))
    for name in ("SHUTDOWN_DRAIN_SECONDS", "GRACEFUL_TIMEOUT_SECONDS", "KEEPALIVE_SECONDS")
}
KUBERNETES_DEFAULT_GRACE = 30
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
# The apps export OTLP over HTTP/protobuf; 4317 is the gRPC port.
OTLP_HTTP_PORT = 4318


def runs_gunicorn(container: Mapping[str, Any]) -> bool:
    words = [str(w) for w in sequence(container.get("command")) + sequence(container.get("args"))]
    return any("gunicorn" in w for w in words)


def gunicorn_setting(container: Mapping[str, Any], name: str) -> float | None:
    """A servicekit.gunicorn_conf setting of the container (env or default), or None for another server."""
    if not runs_gunicorn(container):
        return None
    raw = container_env(container).get(name)
    try:
        return float(raw) if raw is not None else GUNICORN_DEFAULTS[name]
    except ValueError:
        return None


def _security(template: PodTemplate, container: Mapping[str, Any], key: str) -> Any:
    """A securityContext field as the kubelet applies it: the container's, else the pod's."""
    own = mapping(container.get("securityContext"))
    if key in own:
        return own[key]
    return mapping(template.spec.get("securityContext")).get(key)


def check_no_proxy_uid(manifests: Sequence[Manifest]) -> list[Finding]:
    """No pod runs as UID 1337: its traffic would skip the sidecar, so mTLS and every policy."""
    findings = []
    for template in pod_templates(manifests):
        # The pod's securityContext, then each container's, which overrides it.
        holders = [("spec.template.spec", template.spec), *template.containers()]
        for path, holder in holders:
            if mapping(holder.get("securityContext")).get("runAsUser") == PROXY_UID:
                where = f"{path}.securityContext.runAsUser"
                findings.append(template.finding("proxy-uid", where, "1337 is the sidecar's UID"))
    return findings


def check_security_context(manifests: Sequence[Manifest]) -> list[Finding]:
    """The hardened securityContext: non-root, read-only root, no escalation, no capability, RuntimeDefault seccomp."""
    findings = []
    for template in pod_templates(manifests):
        if template.spec.get("automountServiceAccountToken") is not False:
            findings.append(
                template.finding(
                    "security-context",
                    "spec.template.spec.automountServiceAccountToken",
                    "must be false: the app never calls the Kubernetes API",
                )
            )
        for path, container in template.containers():
            context = f"{path}.securityContext"
            required = {
                "runAsNonRoot": True,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
            }
            for key, wanted in required.items():
                if _security(template, container, key) is not wanted:
                    findings.append(
                        template.finding(
                            "security-context", f"{context}.{key}", f"must be {str(wanted).lower()}"
                        )
                    )
            if _security(template, container, "privileged") is True:
                findings.append(
                    template.finding("security-context", f"{context}.privileged", "must not be true")
                )
            user = _security(template, container, "runAsUser")
            if user == 0:
                findings.append(
                    template.finding("security-context", f"{context}.runAsUser", "must not be root (0)")
                )
            capabilities = mapping(mapping(container.get("securityContext")).get("capabilities"))
            if "ALL" not in [str(c) for c in sequence(capabilities.get("drop"))]:
                findings.append(
                    template.finding("security-context", f"{context}.capabilities.drop", "must drop ALL")
                )
            if sequence(capabilities.get("add")):
                findings.append(
                    template.finding("security-context", f"{context}.capabilities.add", "must add none")
                )
            seccomp = mapping(_security(template, container, "seccompProfile")).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                findings.append(
                    template.finding(
                        "security-context", f"{context}.seccompProfile.type", "must be RuntimeDefault"
                    )
                )
    return findings


def check_probes(manifests: Sequence[Manifest]) -> list[Finding]:
    """Startup, readiness and liveness probes on every container, aimed at a declared port."""
    findings = []
    for template in pod_templates(manifests):
        for path, container in template.containers():
            ports = container_port_numbers(container)
            for probe_name in PROBES:
                probe = container.get(probe_name)
                if not isinstance(probe, Mapping):
                    findings.append(template.finding("probes", f"{path}.{probe_name}", "missing"))
                    continue
                port = mapping(probe.get("httpGet") or probe.get("tcpSocket") or probe.get("grpc")).get(
                    "port"
                )
                if port is not None and str(port) not in ports:
                    findings.append(
                        template.finding(
                            "probes",
                            f"{path}.{probe_name}",
                            f"port {port!r} is not a declared port of the container",
                        )
                    )
    return findings


_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIXES = {
    "": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40,
}  # fmt: skip


def parse_quantity(value: Any) -> float | None:
    match = _QUANTITY.match(str(value))
    if not match or match[2] not in _SUFFIXES:
        return None
    try:
        return float(match[1]) * _SUFFIXES[match[2]]
    except ValueError:
        return None


def check_resources(manifests: Sequence[Manifest]) -> list[Finding]:
    """CPU and memory requests and limits on every container, requests within limits."""
    findings = []
    for template in pod_templates(manifests):
        for path, container in template.containers():
            resources = mapping(container.get("resources"))
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in mapping(resources.get(kind)):
                        findings.append(
                            template.finding("resources", f"{path}.resources.{kind}.{resource}", "missing")
                        )
            for resource in ("cpu", "memory"):
                request = parse_quantity(mapping(resources.get("requests")).get(resource))
                limit = parse_quantity(mapping(resources.get("limits")).get(resource))
                if request is not None and limit is not None and request > limit:
                    findings.append(
                        template.finding(
                            "resources", f"{path}.resources.requests.{resource}", "is above the limit"
                        )
                    )
    return findings


def check_writable_paths(manifests: Sequence[Manifest]) -> list[Finding]:
    """With a read-only root, what must be written is a volume: /tmp for gunicorn, DATA_DIR for results."""
    findings = []
    for template in pod_templates(manifests):
        volumes = {str(mapping(v).get("name")): mapping(v) for v in sequence(template.spec.get("volumes"))}
        for path, container in template.containers():
            mounts = {}
            for index, mount in enumerate(sequence(container.get("volumeMounts"))):
                mount = mapping(mount)
                name, mount_path = str(mount.get("name")), str(mount.get("mountPath"))
                mounts[mount_path] = (name, mount)
                if name not in volumes:
                    findings.append(
                        template.finding(
                            "writable-paths", f"{path}.volumeMounts[{index}].name", f"no volume {name}"
                        )
                    )
            if _security(template, container, "readOnlyRootFilesystem") is not True:
                continue
            writable = {p for p, (n, m) in mounts.items() if n in volumes and not m.get("readOnly")}
            if runs_gunicorn(container):
                tmp = mounts.get("/tmp")
                if tmp is None or "emptyDir" not in volumes.get(tmp[0], {}):
                    findings.append(
                        template.finding(
                            "writable-paths",
                            f"{path}.volumeMounts",
                            "gunicorn needs /tmp writable: mount an emptyDir there",
                        )
                    )
            data_dir = container_env(container).get("DATA_DIR")
            if data_dir and not any(
                data_dir == p or data_dir.startswith(p.rstrip("/") + "/") for p in writable
            ):
                findings.append(
                    template.finding(
                        "writable-paths",
                        f"{path}.env.DATA_DIR",
                        f"{data_dir} is on the read-only root: mount a volume there",
                    )
                )
    return findings


def check_termination_grace(manifests: Sequence[Manifest]) -> list[Finding]:
    """The grace period outlasts the drain (/readyz failing) plus gunicorn's graceful stop."""
    findings = []
    for template in pod_templates(manifests):
        grace = template.spec.get("terminationGracePeriodSeconds", KUBERNETES_DEFAULT_GRACE)
        for _, container in template.containers():
            drain = gunicorn_setting(container, "SHUTDOWN_DRAIN_SECONDS")
            graceful = gunicorn_setting(container, "GRACEFUL_TIMEOUT_SECONDS")
            if drain is None or graceful is None or not isinstance(grace, (int, float)):
                continue
            if grace <= drain + graceful:
                findings.append(
                    template.finding(
                        "termination-grace",
                        "spec.template.spec.terminationGracePeriodSeconds",
                        f"{grace}s is not above drain {drain:g}s + graceful {graceful:g}s of {container.get('name')}: "
                        "requests in flight are killed",
                    )
                )
    return findings


def check_scrape_annotations(manifests: Sequence[Manifest]) -> list[Finding]:
    """prometheus.io annotations that Istio's metrics merging can follow to the app's /metrics."""
    findings = []
    for template in pod_templates(manifests):
        annotations = template.annotations
        field = "spec.template.metadata.annotations"
        if annotations.get("prometheus.io/scrape") != "true":
            findings.append(
                template.finding("scrape-annotations", f"{field}.prometheus.io/scrape", 'must be "true"')
            )
            continue
        ports = {n for _, c in template.containers() for n in container_port_numbers(c).values()}
        port = annotations.get("prometheus.io/port")
        if not (port and port.isdigit() and int(port) in ports):
            findings.append(
                template.finding(
                    "scrape-annotations",
                    f"{field}.prometheus.io/port",
                    f"{port!r} is not a container port number",
                )
            )
        if annotations.get("prometheus.io/path", METRICS_PATH) != METRICS_PATH:
            findings.append(
                template.finding(
                    "scrape-annotations", f"{field}.prometheus.io/path", f"the apps serve {METRICS_PATH}"
                )
            )
    return findings


def check_otlp_endpoint(manifests: Sequence[Manifest]) -> list[Finding]:
    """Traces go to an OTLP/HTTP base URL (the exporter appends /v1/traces), on the HTTP port."""
    findings = []
    for template in pod_templates(manifests):
        for path, container in template.containers():
            env = container_env(container)
            if not runs_gunicorn(container) or env.get("TELEMETRY_ENABLED", "true").lower() in (
                "0",
                "false",
                "no",
                "off",
            ):
                continue
            endpoint = env.get(OTLP_ENDPOINT_ENV)
            field = f"{path}.env.{OTLP_ENDPOINT_ENV}"
            if not endpoint:
                findings.append(
                    template.finding(
                        "otlp-endpoint", field, "missing: spans would be made and never exported"
                    )
                )
                continue
            url = urlsplit(endpoint)
            try:
                port = url.port
            except ValueError:
                port = None
            if url.scheme not in ("http", "https") or not url.hostname:
                findings.append(
                    template.finding("otlp-endpoint", field, f"{endpoint!r} is not an http(s) URL")
                )
            elif port != OTLP_HTTP_PORT:
                findings.append(
                    template.finding(
                        "otlp-endpoint", field, f"port {port}: OTLP over HTTP listens on {OTLP_HTTP_PORT}"
                    )
                )
            elif url.path not in ("", "/"):
                findings.append(
                    template.finding(
                        "otlp-endpoint",
                        field,
                        f"path {url.path!r}: give the base URL, the exporter appends /v1/traces",
                    )
                )
    return findings


def check_availability(manifests: Sequence[Manifest]) -> list[Finding]:
    """Each workload has a PodDisruptionBudget that allows a drain, and an autoscaler that keeps its replicas."""
    budgets = of_kind(manifests, "PodDisruptionBudget")
    findings = []
    for template in pod_templates(manifests):
        owner = template.owner
        mine = [
            b
            for b in budgets
            if b.namespace == owner.namespace
            and label_selector_matches(mapping(b.spec.get("selector")), template.labels)
        ]
        if not mine:
            findings.append(
                template.finding("availability", "metadata.name", "no PodDisruptionBudget selects its pods")
            )
        for budget in mine:
            min_available = budget.spec.get("minAvailable")
            max_unavailable = budget.spec.get("maxUnavailable")
            if (isinstance(min_available, int) and min_available >= template.replicas) or max_unavailable in (
                0,
                "0%",
            ):
                findings.append(
                    budget.finding(
                        "availability",
                        "spec",
                        f"allows no eviction of {owner.name}'s {template.replicas} pod(s): a node drain would hang",
                    )
                )
        scaler = template.autoscaler
        if scaler is None:
            findings.append(
                template.finding("availability", "metadata.name", "no HorizontalPodAutoscaler scales it")
            )
            continue
        if "replicas" in owner.spec:
            findings.append(
                owner.finding(
                    "availability",
                    "spec.replicas",
                    f"set while HorizontalPodAutoscaler {scaler.name} scales it: every kubectl apply resets "
                    "the scale the autoscaler chose; leave it out (the autoscaler keeps minReplicas)",
                )
            )
        low, high = scaler.spec.get("minReplicas", 1), scaler.spec.get("maxReplicas", 0)
        if isinstance(low, int) and isinstance(high, int) and high < low:
            findings.append(
                scaler.finding("availability", "spec.maxReplicas", f"{high} is below minReplicas {low}")
            )
    return findings
