"""Istio and Kubernetes manifests to Envoy v3 bootstraps, following istiod field by field.

Pure functions, no I/O: the runner parses the YAML files, passes the documents
with their paths, and writes the returned bootstraps where Envoy reads them.

    resources = resources_from_documents((path, doc) for path in files for doc in yaml.safe_load_all(...))
    manifests = read_manifests(resources)                 # TranslationError names file, resource, field
    replicas = deployment_replicas(manifests)             # {"meshcalc/calculator-v1": 2, ...}
    endpoints = local_endpoints(manifests, {"meshcalc/calculator-v1": [port1, port2], ...})
    ingress = ingress_bootstrap(manifests, endpoints, listen_port=8080, admin_port=...)
    sidecar = sidecar_bootstrap(manifests, endpoints, workload="meshcalc/gateway", listen_port=..., admin_port=...)
"""

from localmesh.translate.bootstrap import (
    INGRESS_STAT_PREFIX,
    SIDECAR_STAT_PREFIX,
    ingress_bootstrap,
    sidecar_bootstrap,
)
from localmesh.translate.endpoints import (
    Endpoints,
    LocalEndpoint,
    deployment_replicas,
    local_endpoints,
    with_pod_ports,
)
from localmesh.translate.errors import TranslationError
from localmesh.translate.manifests import Manifests, read_manifests
from localmesh.translate.resources import Resource, overlay, resources_from_documents
from localmesh.translate.routes import cluster_name

__all__ = [
    "INGRESS_STAT_PREFIX",
    "SIDECAR_STAT_PREFIX",
    "Endpoints",
    "LocalEndpoint",
    "Manifests",
    "Resource",
    "TranslationError",
    "cluster_name",
    "deployment_replicas",
    "ingress_bootstrap",
    "local_endpoints",
    "overlay",
    "read_manifests",
    "resources_from_documents",
    "sidecar_bootstrap",
    "with_pod_ports",
]
