"""Complete Envoy bootstraps: the ingress gateway, and a workload's outbound and inbound sidecars."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from localmesh.translate.authorization import rbac_filter
from localmesh.translate.clusters import outbound_clusters
from localmesh.translate.endpoints import Endpoints
from localmesh.translate.envoy_filters import apply_envoy_filters
from localmesh.translate.envoy_types import HCM_FILTER, ROUTER_FILTER, ROUTER_TYPE
from localmesh.translate.errors import Origin, TranslationError
from localmesh.translate.gateways import INGRESS_NAMESPACE, Gateway, Server
from localmesh.translate.kube import DOMAIN_SUFFIX, Service
from localmesh.translate.listeners import http_connection_manager, http_listener, socket_address, virtual_host
from localmesh.translate.manifests import Manifests
from localmesh.translate.resources import Resource
from localmesh.translate.routes import RouteContext, cluster_name, default_route, virtual_service_routes
from localmesh.translate.virtual_services import MESH, VirtualService, visible_in

INGRESS_STAT_PREFIX = "ingressgateway"  # stats: http.ingressgateway.*
SIDECAR_STAT_PREFIX = "sidecar_outbound"  # stats: http.sidecar_outbound.*


# Istio's bootstrap tags cluster stats with cluster_name (its regex, which
# keeps the dots of a service FQDN in the tag), so /stats/prometheus gives
# envoy_cluster_upstream_rq_retry{cluster_name="outbound|80|v1|..."}: the series
# the dashboard reads from a cluster's sidecars.
ISTIO_STATS_CONFIG = {
    "use_all_default_tags": False,
    "stats_tags": [
        {"tag_name": "cluster_name", "regex": r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)"},
        {"tag_name": "response_code_class", "regex": r"_rq(_(\dxx))$"},
    ],
}


def envoy_bootstrap(
    node_id: str, node_cluster: str, address: str, admin_port: int, listener: dict, clusters: list[dict]
) -> dict:
    """One listener and its clusters, with the node, admin address and stats of every Envoy here."""
    return {
        "node": {"id": node_id, "cluster": node_cluster},
        "admin": {"address": socket_address(address, admin_port)},
        "stats_config": ISTIO_STATS_CONFIG,
        "static_resources": {"listeners": [listener], "clusters": clusters},
    }


def _cluster_lookup(clusters: list[dict]):
    names = {cluster["name"] for cluster in clusters}
    return names.__contains__


# -- ingress gateway ---------------------------------------------------------------------------------


def _host_within(host: str, pattern: str) -> bool:
    """Istio's host.Name.SubsetOf: ``host`` is ``pattern`` or one of the names its wildcard covers."""
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return host.endswith(pattern[1:]) and (not host.startswith("*") or len(host) >= len(pattern))
    return host == pattern


def gateway_hosts(vs: VirtualService, server: Server) -> list[str]:
    """The hosts a VirtualService gets on a server: the more specific of each intersecting pair."""
    hosts = []
    for vs_host in vs.hosts:
        for gateway_host in server.hosts:
            if not gateway_host.admits(vs.namespace):
                continue
            if _host_within(vs_host, gateway_host.host):
                hosts.append(vs_host)
            elif _host_within(gateway_host.host, vs_host):
                hosts.append(gateway_host.host)
    return list(dict.fromkeys(hosts))


def gateway_domains(host: str, port: int) -> list[str]:
    """istiod's buildGatewayVirtualHostDomains."""
    if host == "*":
        return ["*"]
    if host.startswith("*"):
        return [host, f"{host}:{port}"]
    return [host, f"{host}:*"]


def _ingress_port(gateways: list[Gateway]) -> int:
    ports: dict[int, Origin] = {}
    for gateway in gateways:
        for index, server in enumerate(gateway.servers):
            if ports and server.port not in ports:
                raise gateway.origin.invalid(
                    f"spec.servers[{index}].port.number",
                    f"{server.port}: the local ingress listens on one port (INGRESS_PORT), and "
                    f"{next(iter(ports.values())).ref} already uses {next(iter(ports))}",
                )
            ports.setdefault(server.port, gateway.origin)
    return next(iter(ports))


def ingress_bootstrap(
    manifests: Manifests,
    endpoints: Endpoints,
    *,
    listen_port: int,
    admin_port: int,
    access_log_path: str = "/dev/stdout",
    address: str = "127.0.0.1",
    namespace: str = INGRESS_NAMESPACE,
) -> dict:
    """The Envoy of the ingress gateway: the Gateways' servers on ``address:listen_port``.

    All Gateways of the manifests select the one ingress gateway (istio: ingressgateway),
    whose pod lives in ``namespace``; their server port (80 in the cluster) becomes
    ``listen_port`` here.
    """
    gateways = sorted(manifests.gateways.values(), key=lambda g: g.key)
    if not gateways:
        raise TranslationError("no Gateway in the manifests: nothing for the ingress gateway to serve")
    server_port = _ingress_port(gateways)
    clusters = outbound_clusters(manifests, endpoints, namespace)
    has_cluster = _cluster_lookup(clusters)
    owners: dict[str, VirtualService] = {}
    hosts: dict[str, list[dict]] = {}
    for vs in manifests.virtual_services:
        if not visible_in(vs.export_to, vs.namespace, namespace):
            continue  # exportTo '.' hides it from the gateway's namespace, as in istiod
        for key in vs.gateways:
            if key == MESH:
                continue
            context = RouteContext(manifests, server_port, frozenset({key}), has_cluster, "the ingress gateway")
            for server in manifests.gateways[key].servers:
                for host in gateway_hosts(vs, server):
                    if host in owners and owners[host] is not vs:
                        raise vs.origin.unsupported(
                            "spec.hosts", host, f"also bound to the ingress by {owners[host].origin.ref}"
                        )
                    if host in owners:
                        continue
                    routes = virtual_service_routes(vs, context)
                    if routes:
                        owners[host] = vs
                        hosts[host] = routes
    virtual_hosts = [
        virtual_host(f"{host}:{server_port}", gateway_domains(host, server_port), hosts[host]) for host in sorted(hosts)
    ]
    # No virtual host for a request's Host: Envoy answers 404 (NR), as the cluster's gateway does.
    route_config = {"name": f"http.{server_port}", "virtual_hosts": virtual_hosts}
    node = f"istio-ingressgateway.{namespace}"
    hcm = http_connection_manager(
        INGRESS_STAT_PREFIX, route_config, access_log_path, node, edge=True, forward_proxy=False
    )
    # istiod's order: the authorization filter first, then what the EnvoyFilters insert.
    rbac = rbac_filter(manifests.ingress_policies)
    if rbac is not None:
        hcm["http_filters"] = [rbac, *hcm["http_filters"]]
    hcm = apply_envoy_filters(hcm, manifests.envoy_filters)
    listener = http_listener(f"0.0.0.0_{server_port}", address, listen_port, hcm)
    return envoy_bootstrap(
        f"router~{address}~{node}~{namespace}.{DOMAIN_SUFFIX}", node, address, admin_port, listener, clusters
    )


# -- sidecar (outbound) -------------------------------------------------------------------------------


def sidecar_domains(service: Service, port: int, proxy_namespace: str) -> list[str]:
    """The names a client in ``proxy_namespace`` may use for a Service, with and without the port.

    Without the port only for port 80: the one listener of the local sidecar serves
    every port, and a URL without a port means 80.
    """
    names = [service.fqdn, f"{service.name}.{service.namespace}.svc", f"{service.name}.{service.namespace}"]
    if service.namespace == proxy_namespace:
        names.append(service.name)
    domains = []
    for name in names:
        if port == 80:
            domains.append(name)
        domains.append(f"{name}:{port}")
    return domains


def sidecar_bootstrap(
    manifests: Manifests,
    endpoints: Endpoints,
    *,
    workload: str,
    listen_port: int,
    admin_port: int,
    access_log_path: str = "/dev/stdout",
    address: str = "127.0.0.1",
    pod: str | None = None,
) -> dict:
    """The sidecar Envoy of a workload's outbound calls, an HTTP proxy on ``address:listen_port``.

    ``workload`` is the Deployment ("namespace/name") whose replicas send their calls
    here through HTTP_PROXY. Its routes are the mesh VirtualServices (no ``gateways``,
    or "mesh"); a Service without one gets istiod's default route. ``pod`` names one
    replica (e.g. "gateway-0") when each replica gets its own sidecar, as in a cluster,
    where connection pools, circuit breakers and outlier ejections are per pod.
    """
    deployment = manifests.deployments.get(workload)
    if deployment is None:
        raise TranslationError(f"no Deployment {workload} in the manifests for a sidecar")
    namespace = deployment.namespace
    clusters = outbound_clusters(manifests, endpoints, namespace)
    has_cluster = _cluster_lookup(clusters)
    mesh_virtual_services = {
        host: vs
        for vs in manifests.virtual_services
        if vs.applies_to_mesh and visible_in(vs.export_to, vs.namespace, namespace)
        for host in vs.hosts
    }
    virtual_hosts = []
    proxy = f"sidecar of {workload}"
    for fqdn in sorted(manifests.services):
        service = manifests.services[fqdn]
        vs = mesh_virtual_services.get(fqdn)
        for port in service.ports:
            routes = []
            if vs is not None:
                context = RouteContext(manifests, port.port, frozenset({MESH}), has_cluster, f"the {proxy}")
                routes = virtual_service_routes(vs, context)
            if not routes:
                routes = [default_route(cluster_name(port.port, "", fqdn), fqdn, port.port)]
            virtual_hosts.append(
                virtual_host(f"{fqdn}:{port.port}", sidecar_domains(service, port.port, namespace), routes)
            )
    route_config = {"name": "outbound_http_proxy", "virtual_hosts": virtual_hosts}
    node_cluster = f"{deployment.name}.{namespace}"
    node = f"{pod or deployment.name}.{namespace}"
    hcm = http_connection_manager(
        SIDECAR_STAT_PREFIX, route_config, access_log_path, f"sidecar~{node}", edge=False, forward_proxy=True
    )
    listener = http_listener("outbound_http_proxy", address, listen_port, hcm)
    return envoy_bootstrap(
        f"sidecar~{address}~{node}~{namespace}.{DOMAIN_SUFFIX}", node_cluster, address, admin_port, listener, clusters
    )


# -- sidecar (inbound) --------------------------------------------------------------------------------

TLS_TRANSPORT = "envoy.transport_sockets.tls"
DOWNSTREAM_TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"


def inbound_bootstrap(
    policies: Iterable[Resource],
    *,
    workload: str,
    app_port: int,
    listen_port: int,
    admin_port: int,
    certificate: Mapping[str, str],
    access_log_path: str = "/dev/stdout",
    address: str = "127.0.0.1",
) -> dict:
    """The inbound sidecar of one replica: mTLS STRICT on ``listen_port``, the RBAC filter, the app behind.

    ``certificate`` holds PEM file paths: ``cert`` and ``key`` (the workload's own
    identity) and ``ca`` (the mesh's root, which every peer's certificate must chain to).
    """
    if not certificate.get("ca") or not certificate.get("cert") or not certificate.get("key"):
        raise TranslationError(f"inbound sidecar of {workload}: needs cert, key and ca")
    app_cluster = f"inbound|{app_port}||"
    to_app = {"match": {"prefix": "/"}, "route": {"cluster": app_cluster}}
    route_config = {
        "name": app_cluster,
        "virtual_hosts": [{"name": "inbound|http", "domains": ["*"], "routes": [to_app]}],
    }
    name = f"inbound_0.0.0.0_{app_port}"
    proxy = f"sidecar~{workload}~inbound"
    hcm = http_connection_manager(name, route_config, access_log_path, proxy, edge=False, forward_proxy=False)
    rbac = rbac_filter(policies)
    router = {"name": ROUTER_FILTER, "typed_config": {"@type": ROUTER_TYPE}}
    hcm["http_filters"] = [rbac, router] if rbac else [router]
    tls = {
        "@type": DOWNSTREAM_TLS_TYPE,
        # PeerAuthentication STRICT: no certificate, no connection.
        "require_client_certificate": True,
        "common_tls_context": {
            "tls_certificates": [
                {
                    "certificate_chain": {"filename": certificate["cert"]},
                    "private_key": {"filename": certificate["key"]},
                }
            ],
            "validation_context": {"trusted_ca": {"filename": certificate["ca"]}},
        },
    }
    listener = {
        "name": name,
        "address": socket_address(address, listen_port),
        "filter_chains": [
            {
                "filters": [{"name": HCM_FILTER, "typed_config": hcm}],
                "transport_socket": {"name": TLS_TRANSPORT, "typed_config": tls},
            }
        ],
    }
    app = {
        "name": app_cluster,
        "type": "STATIC",
        "connect_timeout": "10s",
        "load_assignment": {
            "cluster_name": app_cluster,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(address, app_port)}}]}],
        },
    }
    node = f"sidecar~{address}~{workload}~inbound"
    return envoy_bootstrap(node, workload, address, admin_port, listener, [app])
