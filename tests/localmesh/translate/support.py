"""Inline manifests and small accessors shared by the translator tests."""

from __future__ import annotations

import functools
import textwrap

import yaml

from localmesh.translate import (
    ingress_bootstrap,
    local_endpoints,
    overlay,
    read_manifests,
    resources_from_documents,
    sidecar_bootstrap,
)

CALC = "calculator.meshcalc.svc.cluster.local"
GW = "gateway.meshcalc.svc.cluster.local"

# The demo's topology: calculator v1 x2, v2 x1, gateway x2, as k8s/ describes it.
K8S = """
apiVersion: v1
kind: Namespace
metadata: {name: meshcalc}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: calculator-v1, namespace: meshcalc}
spec:
  replicas: 2
  selector: {matchLabels: {app: calculator, version: v1}}
  template:
    metadata: {labels: {app: calculator, version: v1}}
    spec:
      containers:
      - name: calculator
        image: meshcalc/calculator:dev
        command: [gunicorn, "calculator.app:create_app()"]
        env: [{name: CALCULATOR_VERSION, value: v1}]
        ports: [{name: http, containerPort: 8000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: calculator-v2, namespace: meshcalc}
spec:
  replicas: 1
  selector: {matchLabels: {app: calculator, version: v2}}
  template:
    metadata: {labels: {app: calculator, version: v2}}
    spec:
      containers:
      - name: calculator
        image: meshcalc/calculator:dev
        ports: [{name: http, containerPort: 8000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: gateway, namespace: meshcalc}
spec:
  replicas: 2
  selector: {matchLabels: {app: gateway}}
  template:
    metadata: {labels: {app: gateway, version: v1}}
    spec:
      containers:
      - name: gateway
        image: meshcalc/gateway:dev
        ports: [{name: http, containerPort: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: calculator, namespace: meshcalc}
spec:
  selector: {app: calculator}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: gateway, namespace: meshcalc}
spec:
  selector: {app: gateway}
  ports: [{name: http, port: 80, targetPort: 8000}]
"""

GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: meshcalc-gateway, namespace: meshcalc}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gateway, namespace: meshcalc}
spec:
  hosts: ["*"]
  gateways: [meshcalc-gateway]
  http:
  - route:
    - destination: {host: gateway}
"""

# The canary: header route to v2, else 90/10.
CALCULATOR_VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: calculator, namespace: meshcalc}
spec:
  hosts: [calculator]
  http:
  - name: canary-header
    match:
    - headers: {x-canary: {exact: always}}
    route:
    - destination: {host: calculator, subset: v2}
  - name: split
    route:
    - destination: {host: calculator, subset: v1}
      weight: 90
    - destination: {host: calculator, subset: v2}
      weight: 10
"""

CALCULATOR_DR = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: calculator, namespace: meshcalc}
spec:
  host: calculator
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 250ms}
      http: {http1MaxPendingRequests: 50, maxRequestsPerConnection: 10, maxRetries: 5, idleTimeout: 30s}
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 1s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
"""

CLUSTER_ONLY = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: meshcalc}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: calculator, namespace: meshcalc}
spec:
  selector: {matchLabels: {app: calculator}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/meshcalc/sa/gateway"]}}]
"""

BASE = {
    "k8s/topology.yaml": K8S,
    "istio/gateway.yaml": GATEWAY,
    "istio/calculator-virtualservice.yaml": CALCULATOR_VS,
    "istio/calculator-destinationrule.yaml": CALCULATOR_DR,
    "istio/security.yaml": CLUSTER_ONLY,
}

LOCAL_PORTS = {
    "meshcalc/calculator-v1": [18001, 18002],
    "meshcalc/calculator-v2": [18003],
    "meshcalc/gateway": [18011, 18012],
}


LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def _parsed(text: str) -> tuple:
    return tuple(yaml.load_all(textwrap.dedent(text), Loader=LOADER))


def documents(files: dict[str, str]) -> list:
    return resources_from_documents((path, document) for path, text in files.items() for document in _parsed(text))


def manifests(scenario: dict[str, str] | None = None, base: dict[str, str] | None = None):
    """The base manifests (K8S + Istio), with a scenario's resources replacing theirs."""
    return read_manifests(overlay(documents(BASE if base is None else base), documents(scenario or {})))


def with_istio(*texts: str) -> dict[str, str]:
    """Only the topology, the Gateway and these Istio documents (one file each)."""
    files = {"k8s/topology.yaml": K8S, "istio/gateway.yaml": GATEWAY}
    files.update({f"istio/test-{index}.yaml": text for index, text in enumerate(texts)})
    return files


def ingress(mesh, **options):
    endpoints = local_endpoints(mesh, LOCAL_PORTS)
    return ingress_bootstrap(mesh, endpoints, listen_port=18080, admin_port=18090, **options)


def sidecar(mesh, **options):
    endpoints = local_endpoints(mesh, LOCAL_PORTS)
    return sidecar_bootstrap(
        mesh, endpoints, workload="meshcalc/gateway", listen_port=18081, admin_port=18091, **options
    )


def hcm(bootstrap: dict) -> dict:
    (listener,) = bootstrap["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (network_filter,) = chain["filters"]
    return network_filter["typed_config"]


def virtual_hosts(bootstrap: dict) -> dict[str, dict]:
    return {vhost["name"]: vhost for vhost in hcm(bootstrap)["route_config"]["virtual_hosts"]}


def routes(bootstrap: dict, vhost: str = f"{CALC}:80") -> list[dict]:
    return virtual_hosts(bootstrap)[vhost]["routes"]


def clusters(bootstrap: dict) -> dict[str, dict]:
    return {cluster["name"]: cluster for cluster in bootstrap["static_resources"]["clusters"]}


def calculator_route(http_yaml: str, **vs_fields) -> list[dict]:
    """The sidecar's routes for the calculator VirtualService with these http rules (YAML list)."""
    spec = {"hosts": ["calculator"], "http": yaml.load(textwrap.dedent(http_yaml), Loader=LOADER), **vs_fields}
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "calculator", "namespace": "meshcalc"},
        "spec": spec,
    }
    mesh = manifests(base=with_istio(yaml.safe_dump(vs), CALCULATOR_DR))
    return routes(sidecar(mesh))


def calculator_clusters(dr_spec_yaml: str) -> dict[str, dict]:
    """The clusters for a calculator DestinationRule with this spec (YAML)."""
    dr = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "calculator", "namespace": "meshcalc"},
        "spec": {"host": "calculator", **yaml.load(textwrap.dedent(dr_spec_yaml), Loader=LOADER)},
    }
    return clusters(sidecar(manifests(base=with_istio(yaml.safe_dump(dr)))))
