"""Where each Service's pods run locally: one process per replica on 127.0.0.1, each with its own port."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from localmesh.translate.errors import TranslationError
from localmesh.translate.manifests import Manifests

# (Service FQDN, Service port number) -> the local endpoints of the pods behind it.
ServicePortKey = tuple[str, int]
Endpoints = Mapping[ServicePortKey, tuple["LocalEndpoint", ...]]


@dataclass(frozen=True)
class LocalEndpoint:
    """One pod replica's listening address, with the pod's labels (subsets select by them)."""

    address: str
    port: int
    labels: Mapping[str, str] = field(hash=False)
    pod: str = ""


def deployment_replicas(manifests: Manifests) -> dict[str, int]:
    """Replicas per Deployment ("namespace/name"): how many local ports the runner must give each."""
    return {key: deployment.replicas for key, deployment in manifests.deployments.items()}


def local_endpoints(
    manifests: Manifests, local_ports: Mapping[str, Sequence[int]], address: str = "127.0.0.1"
) -> dict[ServicePortKey, tuple[LocalEndpoint, ...]]:
    """The endpoints of every Service port, from the Deployments its selector matches.

    ``local_ports`` maps each Deployment ("namespace/name") to the ports of its
    replicas, one per replica, in replica order.
    """
    for key, ports in local_ports.items():
        deployment = manifests.deployments.get(key)
        if deployment is None:
            raise TranslationError(f"local ports given for {key}, which is no Deployment of the manifests")
        if len(ports) != deployment.replicas:
            raise TranslationError(
                f"{deployment.origin.source}: {deployment.origin.ref}: has {deployment.replicas} replicas, "
                f"but {len(ports)} local ports were given"
            )
    targets: dict[str, set[int]] = {}
    result: dict[ServicePortKey, tuple[LocalEndpoint, ...]] = {}
    for service in manifests.services.values():
        selected = [
            deployment
            for deployment in manifests.deployments.values()
            if service.selector
            and deployment.namespace == service.namespace
            and service.selector.items() <= deployment.labels.items()
        ]
        for port in service.ports:
            endpoints = []
            for deployment in selected:
                container_port = deployment.container_port(port.target_port)
                if container_port is None:
                    continue  # a named targetPort this pod does not declare: no endpoint, as in Kubernetes
                targets.setdefault(deployment.key, set()).add(container_port)
                if len(targets[deployment.key]) > 1:
                    raise TranslationError(
                        f"{deployment.origin.source}: {deployment.origin.ref}: Services target container ports "
                        f"{sorted(targets[deployment.key])}; the local mesh runs each replica on one port"
                    )
                for index, local_port in enumerate(local_ports.get(deployment.key, ())):
                    endpoints.append(
                        LocalEndpoint(address, local_port, dict(deployment.labels), f"{deployment.name}-{index}")
                    )
            result[(service.fqdn, port.port)] = tuple(endpoints)
    return result


def with_pod_ports(
    endpoints: Endpoints, ports_by_pod: Mapping[str, Sequence[int]]
) -> dict[ServicePortKey, tuple[LocalEndpoint, ...]]:
    """The endpoints with each pod of ``ports_by_pod`` at the ports given instead of its own.

    No port withdraws the pod, as Kubernetes drops a pod that is not ready (or
    terminating) from its Service's EndpointSlices; two ports stand for the old
    pod and its surge replacement of a rolling update, both ready.
    """
    result = {}
    for key, members in endpoints.items():
        replaced: list[LocalEndpoint] = []
        for endpoint in members:
            if endpoint.pod not in ports_by_pod:
                replaced.append(endpoint)
                continue
            replaced += [
                LocalEndpoint(endpoint.address, port, endpoint.labels, endpoint.pod) for port in ports_by_pod[endpoint.pod]
            ]
        result[key] = tuple(replaced)
    return result
