"""From a Deployment's manifest to the local processes that play its replicas. Pure.

Everything a replica runs comes from its Deployment: the gunicorn command and
its app, the environment, the labels. The local mesh changes only what
cannot hold on one machine, and says so here:

- the listening address (``--bind 127.0.0.1:<port>``: one port per replica);
- ``DATA_DIR``: a directory per replica, as each pod has its own emptyDir;
- the OTLP endpoint: the cluster's collector name does not resolve here, so
  it is dropped unless the runner is given a local one;
- ``HTTP_PROXY``: a replica that calls another Service of the mesh gets its
  sidecar Envoy as proxy, as iptables would send it there in a pod;
- ``ADMIN_BIND``: where the manifest gives a replica an admin surface (on the
  pod's loopback), a loopback port of its own here;
- ``HOSTNAME``: the pod's name, as Kubernetes sets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from localmesh.processes import ServiceSpec
from localmesh.translate import Resource, TranslationError
from localmesh.translate.kube import replicas_at_rest, resolve_host

GUNICORN = "gunicorn"
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
ADMIN_BIND = "ADMIN_BIND"
LOCAL_OVERRIDES = (
    "BIND", "DATA_DIR", OTLP_ENDPOINT, "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", ADMIN_BIND, "HOSTNAME",
)


@dataclass(frozen=True)
class Workload:
    """What every replica of one Deployment runs."""

    deployment: str  # "namespace/name"
    name: str
    namespace: str
    replicas: int
    labels: Mapping[str, str]
    app: str  # the gunicorn app spec, e.g. "calculator.app:create_app()"
    config: str | None  # gunicorn's -c value
    env: Mapping[str, str]
    calls_mesh: bool  # has a URL of a mesh Service in its environment

    def pod(self, index: int) -> str:
        return f"{self.name}-{index}"

    @property
    def has_admin(self) -> bool:
        """Its pods have an admin surface (faults at run time: calculator/admin.py)."""
        return ADMIN_BIND in self.env


def _container(resource: Resource) -> Mapping:
    where = f"{resource.source}: {resource.origin.ref}"
    containers = (((resource.spec.get("template") or {}).get("spec") or {}).get("containers")) or []
    if len(containers) != 1:
        raise TranslationError(f"{where}: spec.template.spec.containers: the local mesh runs pods of one container")
    return containers[0]


def _gunicorn_command(resource: Resource, container: Mapping) -> tuple[str, str | None]:
    where = f"{resource.source}: {resource.origin.ref}: spec.template.spec.containers[0]"
    argv = list(container.get("command") or []) + list(container.get("args") or [])
    if not argv or Path(argv[0]).name != GUNICORN:
        raise TranslationError(f"{where}.command: the local mesh runs gunicorn apps; got {argv!r}")
    config, positional = None, []
    rest = iter(argv[1:])
    for argument in rest:
        if argument in ("-c", "--config"):
            config = next(rest, None)
        elif argument.startswith("--config="):
            config = argument.partition("=")[2]
        elif argument.startswith("-"):
            raise TranslationError(
                f"{where}.args: {argument}: put gunicorn settings in the config file or the environment"
            )
        else:
            positional.append(argument)
    if len(positional) != 1:
        raise TranslationError(f"{where}.args: expected one gunicorn app, got {positional!r}")
    return positional[0], config


def _environment(resource: Resource, container: Mapping) -> dict[str, str]:
    env = {}
    for index, variable in enumerate(container.get("env") or []):
        if "value" not in variable:
            raise TranslationError(
                f"{resource.source}: {resource.origin.ref}: spec.template.spec.containers[0].env[{index}]: "
                "only literal values are supported by the local mesh (valueFrom needs a cluster)"
            )
        env[variable["name"]] = str(variable["value"])
    return env


def _calls_mesh(env: Mapping[str, str], namespace: str, service_hosts: set[str]) -> bool:
    for value in env.values():
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.hostname:
            if resolve_host(parts.hostname, namespace) in service_hosts:
                return True
    return False


def workload(resource: Resource, service_hosts: set[str]) -> Workload:
    """A Deployment resource as the local mesh runs it; ``service_hosts`` are the mesh's Service FQDNs.

    Its replicas are those it runs when idle: the minReplicas of the HorizontalPodAutoscaler
    that targets it (the loader notes it on the resource), else its ``spec.replicas``.
    """
    container = _container(resource)
    app, config = _gunicorn_command(resource, container)
    env = _environment(resource, container)
    labels = ((resource.spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    return Workload(
        deployment=f"{resource.namespace}/{resource.name}",
        name=resource.name,
        namespace=resource.namespace,
        replicas=replicas_at_rest(resource),
        labels=dict(labels),
        app=app,
        config=config,
        env=env,
        calls_mesh=_calls_mesh(env, resource.namespace, service_hosts),
    )


def replica_spec(
    workload: Workload,
    index: int,
    port: int,
    data_root: Path,
    sidecar_port: int | None = None,
    otlp_endpoint: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    admin_port: int | None = None,
) -> ServiceSpec:
    """The process of one replica: the manifest's environment with the local overrides."""
    env = {key: value for key, value in workload.env.items() if key not in LOCAL_OVERRIDES}
    env["DATA_DIR"] = str(data_root / workload.pod(index))
    env["HOSTNAME"] = workload.pod(index)
    if workload.has_admin:
        if admin_port is None:
            raise TranslationError(f"{workload.pod(index)}: its Deployment sets {ADMIN_BIND}: it needs an admin port")
        env[ADMIN_BIND] = f"127.0.0.1:{admin_port}"
    if otlp_endpoint:
        env[OTLP_ENDPOINT] = otlp_endpoint
    if sidecar_port is not None:
        env["HTTP_PROXY"] = f"http://127.0.0.1:{sidecar_port}"
        # Loopback (Prometheus, a local OTLP collector) is outside the mesh.
        env["NO_PROXY"] = "127.0.0.1,localhost"
    env.update(extra_env or {})
    return ServiceSpec(workload.pod(index), workload.app, port, env, config=workload.config)
