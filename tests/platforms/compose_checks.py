"""Checks of compose.yaml and the config files under compose/: each returns the problems it finds.

The Compose file is read twice: by the Compose Specification's JSON schema (the
copy check-jsonschema ships) and by podman-compose's own parser, whose
normalised output (anchors and merges resolved, paths made absolute) the
reference checks then read. Nothing here needs a container engine.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml

from tests.platforms.base_manifests import k8s_deployments, k8s_replicas  # noqa: F401 (k8s_deployments: for the tests)
from tests.platforms.durations import seconds

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
ENVOY_CONFIG = ROOT / "compose" / "envoy" / "envoy.yaml"
PROMETHEUS_CONFIG = ROOT / "compose" / "prometheus" / "prometheus.yml"
VENV_BIN = Path(sys.executable).parent
PODMAN_COMPOSE = VENV_BIN / "podman-compose"
ENVOY = VENV_BIN / "envoy"

OUR_IMAGE = "meshcalc:dev"
JAEGER_OTLP_HTTP = "http://jaeger:4318"
GUNICORN_COMMAND = ["gunicorn", "-c", "python:servicekit.gunicorn_conf"]
RESTART_POLICIES = {"always", "unless-stopped", "on-failure"}
NAMESPACE = "meshcalc"
# Istio's cluster names: outbound|PORT|SUBSET|HOST (both Services listen on 80).
SERVICE_PORT = 80


def cluster_name(host: str, subset: str = "") -> str:
    return f"outbound|{SERVICE_PORT}|{subset}|{host}.{NAMESPACE}.svc.cluster.local"


# -- reading -------------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose_spec_schema() -> dict:
    vendor = files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


def schema_problems(document: Any) -> list[str]:
    schema = compose_spec_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]


class ComposeParseError(Exception):
    pass


def podman_compose_config(path: Path) -> dict:
    """podman-compose's normalised model of the file; --dry-run: no podman needed."""
    result = subprocess.run(
        [str(PODMAN_COMPOSE), "--dry-run", "-f", str(path), "config"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise ComposeParseError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no output")
    return yaml.safe_load(result.stdout)


def services(compose: Mapping[str, Any]) -> dict[str, dict]:
    return dict(compose.get("services") or {})


def ours(compose: Mapping[str, Any]) -> dict[str, dict]:
    """The services that run this project's image."""
    return {name: s for name, s in services(compose).items() if s.get("image") == OUR_IMAGE}


def volumes_of(service: Mapping[str, Any]) -> list[dict]:
    """Long syntax for every mount, short syntax ("src:dst[:mode]") converted."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target, _, mode = rest.partition(":")
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            mounts.append({"type": kind, "source": source, "target": target, "read_only": "ro" in mode.split(",")})
        else:
            mounts.append(dict(volume))
    return mounts


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.partition("=")[::2] for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def replicas_of(service: Mapping[str, Any]) -> int:
    return int((service.get("deploy") or {}).get("replicas", 1))


# -- Compose services ------------------------------------------------------------------------------


def _uid(user: str) -> str:
    return str(user).partition(":")[0]


def service_problems(compose: Mapping[str, Any], base_dir: Path) -> list[str]:
    """Every service: an image or a build, a restart policy, a healthcheck, least privilege, real files."""
    problems = []
    all_services = services(compose)
    declared_volumes = set((compose.get("volumes") or {}).keys())
    for name, service in all_services.items():
        where = f"services.{name}"
        image, build = service.get("image"), service.get("build")
        if not image and not build:
            problems.append(f"{where}: neither image nor build")
        if image and not build and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
            problems.append(f"{where}.image: {image} is not pinned to a version")
        if build:
            build = {"context": build} if isinstance(build, str) else build
            context = base_dir / build.get("context", ".")
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                problems.append(f"{where}.build: no {dockerfile.relative_to(base_dir) if dockerfile.is_relative_to(base_dir) else dockerfile}")
        restart = service.get("restart")
        deploy_restart = ((service.get("deploy") or {}).get("restart_policy") or {}).get("condition")
        if restart not in RESTART_POLICIES and deploy_restart not in {"any", "on-failure"}:
            problems.append(f"{where}.restart: {restart!r}, a container that dies stays dead")
        healthcheck = service.get("healthcheck") or {}
        test = healthcheck.get("test")
        if not test or healthcheck.get("disable") or test in (["NONE"], "NONE"):
            problems.append(f"{where}.healthcheck: none")
        for dependency in service.get("depends_on") or {}:
            if dependency not in all_services:
                problems.append(f"{where}.depends_on: no service {dependency}")
        # Least privilege, for every container, ours or not.
        user = service.get("user")
        if user is None or _uid(user) in ("0", "root"):
            problems.append(f"{where}.user: {user!r}, not a non-root user")
        if service.get("read_only") is not True:
            problems.append(f"{where}.read_only: the root filesystem is writable")
        if "ALL" not in (service.get("cap_drop") or []):
            problems.append(f"{where}.cap_drop: does not drop ALL capabilities")
        if not any(str(option).replace("=", ":") in ("no-new-privileges", "no-new-privileges:true") for option in service.get("security_opt") or []):
            problems.append(f"{where}.security_opt: no no-new-privileges")
        mounts = volumes_of(service)
        if not any(m.get("type") == "tmpfs" and m.get("target") == "/tmp" for m in mounts) and "/tmp" not in str(service.get("tmpfs")):
            problems.append(f"{where}: no tmpfs on /tmp for a read-only root")
        for index, mount in enumerate(mounts):
            if mount.get("type") == "bind":
                source = Path(mount["source"]).expanduser()
                source = source if source.is_absolute() else base_dir / source
                if not source.exists():
                    problems.append(f"{where}.volumes[{index}]: {mount['source']} does not exist")
                if not mount.get("read_only"):
                    problems.append(f"{where}.volumes[{index}]: config {mount['source']} mounted writable")
            if mount.get("type") == "volume" and mount.get("source") and mount["source"] not in declared_volumes:
                problems.append(f"{where}.volumes[{index}]: volume {mount['source']} not declared")
        for port in service.get("ports") or []:
            published = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published', '')}:{port.get('target', '')}"
            if not str(published).startswith("127.0.0.1:"):
                problems.append(f"{where}.ports: {published} is not bound to 127.0.0.1")
    return problems


def container_of(deployment: Mapping[str, Any]) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def our_service_problems(compose: Mapping[str, Any], deployments: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Our services as the k8s Deployments run them: same command, user, replicas, versions, traces to Jaeger."""
    problems = []
    replicas = k8s_replicas()  # the autoscalers' minimums: the Deployments leave their scale to them
    our_services = ours(compose)
    for name in deployments:
        if name not in our_services:
            problems.append(f"services: no {name}, which k8s/base deploys")
    for name, service in our_services.items():
        where = f"services.{name}"
        command = service.get("command") or []
        if command[:3] != GUNICORN_COMMAND:
            problems.append(f"{where}.command: {command}, not gunicorn with servicekit.gunicorn_conf")
        if _uid(service.get("user", "")) != "10001" or not str(service.get("user", "")).endswith(":0"):
            problems.append(f"{where}.user: {service.get('user')!r}, not the image's 10001:0")
        environment = environment_of(service)
        if environment.get("OTEL_EXPORTER_OTLP_ENDPOINT") != JAEGER_OTLP_HTTP:
            problems.append(f"{where}: OTEL_EXPORTER_OTLP_ENDPOINT is {environment.get('OTEL_EXPORTER_OTLP_ENDPOINT')!r}, not {JAEGER_OTLP_HTTP}")
        if "jaeger" not in services(compose):
            problems.append(f"{where}: traces go to jaeger, which is no service")
        shutdown = float(environment.get("SHUTDOWN_DRAIN_SECONDS", 5)) + float(environment.get("GRACEFUL_TIMEOUT_SECONDS", 20))
        if seconds(service.get("stop_grace_period", "10s")) <= shutdown:
            problems.append(f"{where}.stop_grace_period: shorter than the drain and the graceful timeout")
        deployment = deployments.get(name)
        if deployment is None:
            problems.append(f"{where}: no Deployment {name} in k8s/base to match")
            continue
        container = container_of(deployment)
        if command != container.get("command", []) + container.get("args", []):
            problems.append(f"{where}.command: {command}, the Deployment runs {container.get('command', []) + container.get('args', [])}")
        if replicas_of(service) != replicas.get(name):
            problems.append(f"{where}: {replicas_of(service)} replica(s), the Deployment has {replicas.get(name)}")
        k8s_env = {e["name"]: str(e.get("value")) for e in container.get("env", [])}
        for variable in ("CALCULATOR_VERSION", "DATA_DIR"):
            if variable in k8s_env and environment.get(variable) != k8s_env[variable]:
                problems.append(f"{where}: {variable}={environment.get(variable)!r}, the Deployment sets {k8s_env[variable]!r}")
        for mount in container.get("volumeMounts", []):
            if mount["mountPath"] != "/tmp" and not any(m.get("target") == mount["mountPath"] for m in volumes_of(service)):
                problems.append(f"{where}: nothing mounted on {mount['mountPath']}, which the Deployment makes writable")
    return problems


# -- Envoy -------------------------------------------------------------------------------------------


def envoy_listeners(envoy: Mapping[str, Any]) -> list[dict]:
    return list((envoy.get("static_resources") or {}).get("listeners") or [])


def envoy_clusters(envoy: Mapping[str, Any]) -> dict[str, dict]:
    return {c["name"]: c for c in (envoy.get("static_resources") or {}).get("clusters") or []}


def _route_configs(listener: Mapping[str, Any]) -> Iterator[dict]:
    for chain in listener.get("filter_chains") or []:
        for network_filter in chain.get("filters") or []:
            route_config = (network_filter.get("typed_config") or {}).get("route_config")
            if route_config:
                yield route_config


def envoy_routes(envoy: Mapping[str, Any]) -> dict[str, dict]:
    """Every named route of every listener."""
    routes = {}
    for listener in envoy_listeners(envoy):
        for route_config in _route_configs(listener):
            for virtual_host in route_config.get("virtual_hosts") or []:
                for route in virtual_host.get("routes") or []:
                    if route.get("name"):
                        routes[route["name"]] = route
    return routes


def listener_port(envoy: Mapping[str, Any], serving_path: str | None = None) -> set[int]:
    """The ports of the listeners (that route ``serving_path``, if given)."""
    ports = set()
    for listener in envoy_listeners(envoy):
        port = listener["address"]["socket_address"]["port_value"]
        if serving_path is None:
            ports.add(port)
            continue
        for route_config in _route_configs(listener):
            for virtual_host in route_config.get("virtual_hosts") or []:
                for route in virtual_host.get("routes") or []:
                    match = route.get("match") or {}
                    if match.get("path") == serving_path or serving_path.startswith(match.get("prefix", "\0")):
                        ports.add(port)
    return ports


def _retry_tokens(text: str) -> set[str]:
    return {token.strip() for token in str(text).split(",") if token.strip()}


def _route_problems(name: str, istio_route: Mapping[str, Any], envoy_route: Mapping[str, Any] | None, host_of) -> list[str]:
    where = f"envoy route {name}"
    if envoy_route is None:
        return [f"{where}: missing (istio/ has it)"]
    problems = []
    action = envoy_route.get("route") or {}
    for match in istio_route.get("match") or []:
        for header, condition in (match.get("headers") or {}).items():
            wanted = {"name": header, "string_match": dict(condition)}
            if wanted not in (envoy_route.get("match") or {}).get("headers", []):
                problems.append(f"{where}: no match on header {header} {condition}")
    destinations = istio_route.get("route") or []
    wanted_clusters = {
        (host_of(d["destination"]["host"], d["destination"].get("subset", "")), d.get("weight", 100 if len(destinations) == 1 else 0))
        for d in destinations
    }
    if len(destinations) == 1:
        actual = {(action.get("cluster"), 100)}
    else:
        actual = {(c["name"], c["weight"]) for c in (action.get("weighted_clusters") or {}).get("clusters", [])}
    if actual != wanted_clusters:
        problems.append(f"{where}: clusters and weights {sorted(actual)}, istio/ says {sorted(wanted_clusters)}")
    if "timeout" in istio_route and seconds(action.get("timeout", "15s")) != seconds(istio_route["timeout"]):
        problems.append(f"{where}: timeout {action.get('timeout')}, istio/ says {istio_route['timeout']}")
    retries = istio_route.get("retries")
    policy = action.get("retry_policy") or {}
    if retries:
        if policy.get("num_retries") != retries.get("attempts"):
            problems.append(f"{where}: {policy.get('num_retries')} retries, istio/ says {retries.get('attempts')}")
        if "retryOn" in retries and _retry_tokens(policy.get("retry_on", "")) != _retry_tokens(retries["retryOn"]):
            problems.append(f"{where}: retry_on {policy.get('retry_on')}, istio/ says {retries['retryOn']}")
        if "perTryTimeout" in retries and seconds(policy.get("per_try_timeout", "0s")) != seconds(retries["perTryTimeout"]):
            problems.append(f"{where}: per_try_timeout {policy.get('per_try_timeout')}, istio/ says {retries['perTryTimeout']}")
    return problems


def _cluster_policy_problems(name: str, cluster: Mapping[str, Any] | None, policy: Mapping[str, Any]) -> list[str]:
    where = f"envoy cluster {name}"
    if cluster is None:
        return [f"{where}: missing (istio/ has the subset)"]
    problems = []
    pool = policy.get("connectionPool") or {}
    tcp, http = pool.get("tcp") or {}, pool.get("http") or {}
    thresholds = ((cluster.get("circuit_breakers") or {}).get("thresholds") or [{}])[0]
    for istio_value, envoy_field in (
        (tcp.get("maxConnections"), "max_connections"),
        (http.get("http1MaxPendingRequests"), "max_pending_requests"),
        (http.get("http2MaxRequests"), "max_requests"),
        (http.get("maxRetries"), "max_retries"),
    ):
        if istio_value is not None and thresholds.get(envoy_field) != istio_value:
            problems.append(f"{where}: circuit breaker {envoy_field} {thresholds.get(envoy_field)}, istio/ says {istio_value}")
    if "connectTimeout" in tcp and seconds(cluster.get("connect_timeout", "5s")) != seconds(tcp["connectTimeout"]):
        problems.append(f"{where}: connect_timeout {cluster.get('connect_timeout')}, istio/ says {tcp['connectTimeout']}")
    if "idleTimeout" in http:
        options = (cluster.get("typed_extension_protocol_options") or {}).get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions") or {}
        idle = (options.get("common_http_protocol_options") or {}).get("idle_timeout", "3600s")
        if seconds(idle) != seconds(http["idleTimeout"]):
            problems.append(f"{where}: idle_timeout {idle}, istio/ says {http['idleTimeout']}")
    outlier = policy.get("outlierDetection")
    if outlier:
        envoy_outlier = cluster.get("outlier_detection") or {}
        for istio_field, envoy_field, convert in (
            ("consecutive5xxErrors", "consecutive_5xx", int),
            ("consecutiveGatewayErrors", "consecutive_gateway_failure", int),
            ("consecutiveLocalOriginFailures", "consecutive_local_origin_failure", int),
            ("splitExternalLocalOriginErrors", "split_external_local_origin_errors", bool),
            ("interval", "interval", seconds),
            ("baseEjectionTime", "base_ejection_time", seconds),
            ("maxEjectionPercent", "max_ejection_percent", int),
        ):
            if istio_field in outlier and (envoy_field not in envoy_outlier or convert(envoy_outlier[envoy_field]) != convert(outlier[istio_field])):
                problems.append(f"{where}: outlier {envoy_field} {envoy_outlier.get(envoy_field)}, istio/ says {outlier[istio_field]}")
        # As istiod: a count of 0 turns that ejection off (Envoy would enforce its default otherwise).
        for istio_field, enforcing in (
            ("consecutive5xxErrors", "enforcing_consecutive_5xx"),
            ("consecutiveGatewayErrors", "enforcing_consecutive_gateway_failure"),
            ("consecutiveLocalOriginFailures", "enforcing_consecutive_local_origin_failure"),
        ):
            if istio_field in outlier:
                wanted = 100 if int(outlier[istio_field]) > 0 else 0
                if envoy_outlier.get(enforcing, 100) != wanted:
                    problems.append(f"{where}: outlier {enforcing} {envoy_outlier.get(enforcing, 100)}, istio/ means {wanted}")
    return problems


def envoy_mirror_problems(envoy: Mapping[str, Any], istio_documents: list[Mapping[str, Any]]) -> list[str]:
    """The hand-written Envoy applies the VirtualServices and DestinationRules of istio/ with their values."""
    problems = []
    routes = envoy_routes(envoy)
    clusters = envoy_clusters(envoy)
    for document in istio_documents:
        kind, spec = document.get("kind"), document.get("spec") or {}
        if kind == "VirtualService":
            for http_route in spec.get("http") or []:
                problems += _route_problems(http_route["name"], http_route, routes.get(http_route["name"]), cluster_name)
        elif kind == "DestinationRule":
            top = spec.get("trafficPolicy") or {}
            subsets = spec.get("subsets") or []
            for subset in subsets:
                # A subset's own block replaces the top-level one, as istiod does.
                policy = {**top, **(subset.get("trafficPolicy") or {})}
                name = cluster_name(spec["host"], subset["name"])
                problems += _cluster_policy_problems(name, clusters.get(name), policy)
            # The subset-less cluster gets the top-level policy; with subsets the
            # Compose Envoy routes to those only and has no such cluster.
            if not subsets:
                name = cluster_name(spec["host"])
                problems += _cluster_policy_problems(name, clusters.get(name), top)
    return problems


def envoy_edge_problems(envoy: Mapping[str, Any], root: Path = ROOT) -> list[str]:
    """The Compose ingress applies istio/ingress/ as the local mesh's translator does: the same RBAC
    filter, the EnvoyFilter's filters before the router and its connection manager fields."""
    from localmesh.loader import load_kustomization
    from localmesh.translate.authorization import rbac_filter
    from localmesh.translate.envoy_filters import HCM_MERGE_FIELDS, apply_envoy_filters, parse_envoy_filter

    resources = load_kustomization(root / "istio" / "ingress", root)
    router = {"name": "envoy.filters.http.router"}
    wanted = apply_envoy_filters(
        {"http_filters": [router]}, [parse_envoy_filter(r) for r in resources if r.kind == "EnvoyFilter"]
    )
    rbac = rbac_filter([r for r in resources if r.kind == "AuthorizationPolicy"])
    wanted["http_filters"] = ([rbac] if rbac else []) + wanted["http_filters"]
    (listener,) = [l for l in envoy["static_resources"]["listeners"] if l["name"] == "ingress_8080"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    problems = []
    names = [f["name"] for f in hcm.get("http_filters", [])]
    if names != [f["name"] for f in wanted["http_filters"]]:
        problems.append(f"ingress http_filters {names}, istio/ingress/ says {[f['name'] for f in wanted['http_filters']]}")
    else:
        for have, want in zip(hcm["http_filters"], wanted["http_filters"]):
            if want["name"] != router["name"] and have != want:
                problems.append(f"ingress filter {want['name']}: {have.get('typed_config')}, istio/ingress/ says {want['typed_config']}")
    for field in sorted(HCM_MERGE_FIELDS):
        if hcm.get(field) != wanted.get(field):
            problems.append(f"ingress {field}: {hcm.get(field)!r}, istio/ingress/ says {wanted.get(field)!r}")
    return problems


def istio_documents(root: Path = ROOT) -> list[dict]:
    documents = []
    for path in sorted((root / "istio").glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind")]
    return documents


def envoy_upstream_problems(envoy: Mapping[str, Any], compose: Mapping[str, Any]) -> list[str]:
    """Envoy's upstreams are Compose services on their ports; what points at Envoy hits a listener."""
    problems = []
    all_services = services(compose)
    for name, cluster in envoy_clusters(envoy).items():
        for locality in (cluster.get("load_assignment") or {}).get("endpoints") or []:
            for endpoint in locality.get("lb_endpoints") or []:
                address = endpoint["endpoint"]["address"]["socket_address"]
                host, port = address["address"], address["port_value"]
                if host == "127.0.0.1":
                    continue
                if host not in all_services:
                    problems.append(f"envoy cluster {name}: {host} is no Compose service")
                elif all_services[host].get("image") == OUR_IMAGE and port != 8080:
                    problems.append(f"envoy cluster {name}: port {port}, {host} listens on 8080")
    ports = listener_port(envoy)
    envoy_service = all_services.get("envoy") or {}
    for published in envoy_service.get("ports") or []:
        target = int(str(published).rsplit(":", 1)[-1]) if isinstance(published, str) else int(published["target"])
        if target not in ports:
            problems.append(f"services.envoy.ports: {published} reaches no listener")
    for name, service in ours(compose).items():
        proxy = environment_of(service).get("HTTP_PROXY")
        if proxy:
            parts = urlsplit(proxy)
            if parts.hostname != "envoy" or parts.port not in ports:
                problems.append(f"services.{name}: HTTP_PROXY {proxy} is not an Envoy listener")
    return problems


# -- Prometheus and Grafana ------------------------------------------------------------------------


def _relabelled(job: Mapping[str, Any]) -> dict[str, str]:
    labels = {}
    for config in job.get("static_configs") or []:
        labels.update(config.get("labels") or {})
    for rule in job.get("relabel_configs") or []:
        if rule.get("action", "replace") == "replace" and not rule.get("source_labels") and "target_label" in rule:
            labels[rule["target_label"]] = rule.get("replacement", "$1")
    return labels


def _scraped_hosts(job: Mapping[str, Any]) -> set[tuple[str, int]]:
    found = set()
    for config in job.get("dns_sd_configs") or []:
        found |= {(name, int(config.get("port", 0))) for name in config.get("names", [])}
    for config in job.get("static_configs") or []:
        for target in config.get("targets", []):
            host, _, port = target.rpartition(":")
            found.add((host, int(port)))
    return found


def prometheus_problems(prometheus: Mapping[str, Any], compose: Mapping[str, Any], envoy: Mapping[str, Any]) -> list[str]:
    """Every service's /metrics with the dashboard's labels, Envoy's stats, exemplars kept."""
    problems = []
    prometheus_service = services(compose).get("prometheus")
    if prometheus_service is None:
        return ["services: no prometheus"]
    flags = [str(arg) for arg in prometheus_service.get("command") or []]
    if not any(f.startswith("--enable-feature=") and "exemplar-storage" in f.split("=", 1)[1].split(",") for f in flags):
        problems.append("services.prometheus.command: exemplar storage not enabled")
    jobs = prometheus.get("scrape_configs") or []
    for name, service in ours(compose).items():
        scraping = [job for job in jobs if (name, 8080) in _scraped_hosts(job)]
        if not scraping:
            problems.append(f"prometheus: nothing scrapes {name}:8080")
            continue
        for job in scraping:
            if job.get("metrics_path", "/metrics") != "/metrics":
                problems.append(f"prometheus job {job['job_name']}: path {job['metrics_path']}, not /metrics")
            labels = _relabelled(job)
            environment = environment_of(service)
            wanted = {"namespace": NAMESPACE, "app": "gateway" if "gateway" in " ".join(service["command"]) else "calculator"}
            if "CALCULATOR_VERSION" in environment:
                wanted["version"] = environment["CALCULATOR_VERSION"]
            for label, value in wanted.items():
                if labels.get(label) != value:
                    problems.append(f"prometheus job {job['job_name']}: label {label}={labels.get(label)!r}, the dashboard needs {value!r}")
    stats_ports = listener_port(envoy, "/stats/prometheus")
    envoy_jobs = [job for job in jobs if any(host == "envoy" for host, _ in _scraped_hosts(job))]
    if not envoy_jobs:
        problems.append("prometheus: Envoy's stats are not scraped")
    for job in envoy_jobs:
        ports = {port for host, port in _scraped_hosts(job) if host == "envoy"}
        if job.get("metrics_path") != "/stats/prometheus" or not ports <= stats_ports:
            problems.append(f"prometheus job {job['job_name']}: {job.get('metrics_path')} on {sorted(ports)} is not Envoy's stats listener")
        if _relabelled(job).get("namespace") != NAMESPACE:
            problems.append(f"prometheus job {job['job_name']}: no namespace={NAMESPACE} label")
    return problems


def _mount_source(service: Mapping[str, Any], path: str, base_dir: Path) -> Path | None:
    """The host path behind ``path`` in the container, through its bind mounts."""
    for mount in sorted(volumes_of(service), key=lambda m: -len(m.get("target", ""))):
        target = mount.get("target", "")
        if mount.get("type") == "bind" and (path == target or path.startswith(target.rstrip("/") + "/")):
            source = Path(mount["source"])
            source = source if source.is_absolute() else base_dir / source
            return source / path[len(target):].lstrip("/")
    return None


def dashboard_datasource_uids(dashboard: Mapping[str, Any]) -> set[str]:
    """The uids a dashboard needs: its datasource variables' defaults and any literal uid."""
    variables = {v["name"]: v for v in (dashboard.get("templating") or {}).get("list", []) if v.get("type") == "datasource"}
    uids = {str((v.get("current") or {}).get("value")) for v in variables.values()}
    uids |= set(re.findall(r'"uid":\s*"([^"$]+)"', json.dumps(dashboard.get("panels", []))))
    return uids


def grafana_problems(compose: Mapping[str, Any], base_dir: Path) -> list[str]:
    """Grafana gets our dashboards and the data sources they name, pointing at Compose services."""
    grafana = services(compose).get("grafana")
    if grafana is None:
        return ["services: no grafana"]
    problems = []
    provisioning = "/etc/grafana/provisioning"
    datasources_dir = _mount_source(grafana, f"{provisioning}/datasources", base_dir)
    dashboards_dir = _mount_source(grafana, f"{provisioning}/dashboards", base_dir)
    if datasources_dir is None or not datasources_dir.is_dir():
        return ["services.grafana: no data sources provisioned"]
    if dashboards_dir is None or not dashboards_dir.is_dir():
        return ["services.grafana: no dashboard provider provisioned"]
    datasources = {}
    for path in sorted(datasources_dir.glob("*.y*ml")):
        for source in (load_yaml(path) or {}).get("datasources") or []:
            datasources[source.get("uid")] = source
    dashboards = []
    for path in sorted(dashboards_dir.glob("*.y*ml")):
        for provider in (load_yaml(path) or {}).get("providers") or []:
            folder = _mount_source(grafana, provider["options"]["path"], base_dir)
            found = sorted(folder.glob("*.json")) if folder and folder.is_dir() else []
            if not found:
                problems.append(f"grafana provider {provider.get('name')}: no dashboard at {provider['options']['path']}")
            dashboards += found
    if not dashboards:
        problems.append("services.grafana: no dashboard reaches Grafana")
    for path in dashboards:
        for uid in sorted(dashboard_datasource_uids(json.loads(path.read_text()))):
            if uid not in datasources:
                problems.append(f"{path.name}: data source uid {uid} is not provisioned")
    all_services = services(compose)
    for uid, source in datasources.items():
        host = urlsplit(source.get("url", "")).hostname
        if host not in all_services:
            problems.append(f"grafana data source {uid}: {source.get('url')} is no Compose service")
        for destination in (source.get("jsonData") or {}).get("exemplarTraceIdDestinations") or []:
            if destination.get("datasourceUid") not in datasources:
                problems.append(f"grafana data source {uid}: exemplars link to {destination.get('datasourceUid')}, not provisioned")
    home = environment_of(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home and not ((_mount_source(grafana, home, base_dir) or Path("/nonexistent")).is_file()):
        problems.append(f"services.grafana: home dashboard {home} is not mounted")
    return problems


# -- tools -------------------------------------------------------------------------------------------


def envoy_validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(path), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=120,
    )
