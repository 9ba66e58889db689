"""All the manifests of one mesh, parsed and cross-checked: the one input of the Envoy builders."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from localmesh.translate.authorization import AUTHORIZATION_POLICY, policies_for, rbac_filter
from localmesh.translate.destination_rules import DestinationRule, parse_destination_rule
from localmesh.translate.envoy_filters import EnvoyFilter, parse_envoy_filter
from localmesh.translate.errors import Origin, TranslationError
from localmesh.translate.gateways import INGRESS_NAMESPACE, INGRESS_SELECTOR, Gateway, parse_gateway
from localmesh.translate.kube import Deployment, Service, parse_deployment, parse_service, with_autoscalers
from localmesh.translate.resources import Resource, check_kind, is_cluster_only
from localmesh.translate.virtual_services import MESH, Destination, VirtualService, parse_virtual_service, visible_in


@dataclass(frozen=True)
class Manifests:
    services: dict[str, Service]  # by FQDN
    deployments: dict[str, Deployment]  # by "namespace/name"
    gateways: dict[str, Gateway]  # by "namespace/name"
    virtual_services: tuple[VirtualService, ...]
    destination_rules: tuple[DestinationRule, ...]
    envoy_filters: tuple[EnvoyFilter, ...]  # the ingress gateway's
    ingress_policies: tuple[Resource, ...]  # AuthorizationPolicies of the ingress gateway
    enforced: tuple[Resource, ...]  # what the local Envoys enforce
    cluster_only: tuple[Resource, ...]  # applied on a cluster only (PeerAuthentication, AuthorizationPolicy...)

    def destination_rule(self, host: str, proxy_namespace: str) -> DestinationRule | None:
        """The DestinationRule of a host as a proxy in ``proxy_namespace`` sees it (exportTo)."""
        for rule in self.destination_rules:
            if rule.host == host and visible_in(rule.export_to, rule.namespace, proxy_namespace):
                return rule
        return None

    def service(self, destination: Destination, origin: Origin) -> Service:
        service = self.services.get(destination.host)
        if service is None:
            raise origin.invalid(f"{destination.path}.host", f"no Service {destination.host} in the manifests")
        return service


def read_manifests(resources: Iterable[Resource]) -> Manifests:
    """Parse every resource and check the references between them; raise TranslationError on the first problem."""
    seen: dict[tuple[str, str, str], Resource] = {}
    enforced, cluster_only = [], []
    services: dict[str, Service] = {}
    deployments: dict[str, Deployment] = {}
    gateways: dict[str, Gateway] = {}
    virtual_services: list[VirtualService] = []
    destination_rules: list[DestinationRule] = []
    envoy_filters: list[EnvoyFilter] = []
    ingress_policies: list[Resource] = []
    for resource in with_autoscalers(resources):
        check_kind(resource)
        if resource.key in seen:
            raise TranslationError(
                f"{resource.source}: {resource.origin.ref}: also defined in {seen[resource.key].source}"
            )
        seen[resource.key] = resource
        if _at_ingress(resource):
            # The ingress gateway's policy is enforced by the local ingress, as on a cluster.
            rbac_filter([resource])  # refuses what it cannot translate, now rather than at start
            ingress_policies.append(resource)
            enforced.append(resource)
            continue
        if is_cluster_only(resource):
            cluster_only.append(resource)
            continue
        enforced.append(resource)
        if resource.kind == "Service":
            service = parse_service(resource)
            services[service.fqdn] = service
        elif resource.kind == "Deployment":
            deployment = parse_deployment(resource)
            deployments[deployment.key] = deployment
        elif resource.kind == "Gateway":
            gateway = parse_gateway(resource)
            gateways[gateway.key] = gateway
        elif resource.kind == "VirtualService":
            virtual_services.append(parse_virtual_service(resource))
        elif resource.kind == "EnvoyFilter":
            envoy_filters.append(parse_envoy_filter(resource))
        else:
            destination_rules.append(parse_destination_rule(resource))
    manifests = Manifests(
        services,
        deployments,
        gateways,
        tuple(virtual_services),
        tuple(destination_rules),
        tuple(envoy_filters),
        tuple(ingress_policies),
        tuple(enforced),
        tuple(cluster_only),
    )
    _check_destination_rules(manifests)
    _check_virtual_services(manifests)
    return manifests


def _at_ingress(resource: Resource) -> bool:
    """An AuthorizationPolicy that selects the ingress gateway, in its namespace."""
    return resource.kind == AUTHORIZATION_POLICY and bool(
        policies_for([resource], INGRESS_NAMESPACE, INGRESS_SELECTOR)
    )


def _check_destination_rules(manifests: Manifests) -> None:
    by_host: dict[str, DestinationRule] = {}
    for rule in manifests.destination_rules:
        if rule.host not in manifests.services:
            raise rule.origin.invalid("spec.host", f"no Service {rule.host} in the manifests")
        if rule.host in by_host:
            # istiod would merge them; one rule per host keeps the local result unambiguous.
            raise rule.origin.unsupported("spec.host", rule.host, f"also the host of {by_host[rule.host].origin.ref}")
        by_host[rule.host] = rule


def _check_destination(manifests: Manifests, vs: VirtualService, destination: Destination) -> None:
    service = manifests.service(destination, vs.origin)
    if destination.port is not None and service.port(destination.port) is None:
        raise vs.origin.invalid(
            f"{destination.path}.port.number",
            f"Service {service.fqdn} has no port {destination.port}",
        )
    if destination.subset:
        rules = [rule for rule in manifests.destination_rules if rule.host == destination.host]
        if not any(rule.subset(destination.subset) for rule in rules):
            raise vs.origin.invalid(
                f"{destination.path}.subset",
                f"no DestinationRule defines subset {destination.subset!r} of {destination.host}",
            )


def _check_virtual_services(manifests: Manifests) -> None:
    mesh_hosts: dict[str, VirtualService] = {}
    for vs in manifests.virtual_services:
        for index, gateway in enumerate(vs.gateways):
            if gateway != MESH and gateway not in manifests.gateways:
                raise vs.origin.invalid(f"spec.gateways[{index}]", f"no Gateway {gateway} in the manifests")
        for route in vs.http:
            for match_index, match in enumerate(route.matches):
                for gateway in match.gateways:
                    if gateway != MESH and gateway not in manifests.gateways:
                        raise vs.origin.invalid(
                            f"{route.path}.match[{match_index}].gateways", f"no Gateway {gateway} in the manifests"
                        )
            for destination in route.route:
                _check_destination(manifests, vs, destination.destination)
            for mirror in route.mirrors:
                _check_destination(manifests, vs, mirror.destination)
        if not vs.applies_to_mesh:
            continue
        for index, host in enumerate(vs.hosts):
            if host not in manifests.services:
                # Sidecars route only Services of the manifests (no ServiceEntry, no wildcard hosts).
                raise vs.origin.unsupported(f"spec.hosts[{index}]", host, "not a Service of the manifests")
            if host in mesh_hosts:
                raise vs.origin.unsupported(
                    f"spec.hosts[{index}]", host, f"also a host of {mesh_hosts[host].origin.ref} for the mesh"
                )
            mesh_hosts[host] = vs
