"""Checks of mesos/marathon.json, a Marathon group (POST /v2/groups) for the same image as k8s/base.

Field names and rules are those of Marathon 1.5 and later (the networking API
of `networks` and `container.portMappings`, MESOS_HTTP health checks,
readiness checks naming a port by name); Marathon has no schema file we can
ship, so the rules it enforces on submit are written out here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.platforms.base_manifests import k8s_deployments, k8s_replicas  # noqa: F401 (k8s_deployments: for the tests)

ROOT = Path(__file__).resolve().parents[2]
MARATHON_FILE = ROOT / "mesos" / "marathon.json"
GROUP_ID = "/meshcalc"
# Marathon's pathType: lowercase names of digits, letters, dashes and dots, separated by slashes.
PATH_ID = re.compile(r"^(\/?((\.{2})|([a-z0-9][a-z0-9\-.]*[a-z0-9]+)|([a-z0-9]*))($|\/))+$")
HEALTH_PROTOCOLS = {"MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP", "HTTP", "HTTPS", "TCP", "COMMAND"}
NETWORK_MODES = {"host", "container", "container/bridge"}
MIB = {"Mi": 1, "Gi": 1024}


def load(path: Path = MARATHON_FILE) -> dict:
    return json.loads(path.read_text())


def apps(group: Mapping[str, Any]) -> dict[str, dict]:
    return {app.get("id"): app for app in group.get("apps") or []}


def _parameters(app: Mapping[str, Any]) -> list[tuple[str, str]]:
    docker = (app.get("container") or {}).get("docker") or {}
    return [(p.get("key"), p.get("value")) for p in docker.get("parameters") or []]


def mesos_dns_name(app_id: str) -> str:
    """Mesos-DNS's name for a Marathon app: /meshcalc/gateway -> gateway-meshcalc.marathon.mesos."""
    return "-".join(reversed(app_id.strip("/").split("/"))) + ".marathon.mesos"


def structure_problems(group: Mapping[str, Any]) -> list[str]:
    """What Marathon would refuse on POST /v2/groups, or accept and then fail to check."""
    problems = []
    if group.get("id") != GROUP_ID:
        problems.append(f"group id {group.get('id')!r}, not {GROUP_ID}")
    all_apps = apps(group)
    if not all_apps:
        return problems + ["no apps"]
    for app_id, app in all_apps.items():
        where = f"app {app_id}"
        if not isinstance(app_id, str) or not PATH_ID.match(app_id) or not app_id.startswith(GROUP_ID + "/"):
            problems.append(f"{where}: id is not a path under {GROUP_ID}")
        if ("cmd" in app) == ("args" in app) and "args" in app:
            problems.append(f"{where}: both cmd and args")
        for field in ("instances", "cpus", "mem"):
            if not isinstance(app.get(field), (int, float)) or app[field] < 0:
                problems.append(f"{where}: {field} missing or negative")
        container = app.get("container") or {}
        if container.get("type") not in ("DOCKER", "MESOS") or not (container.get("docker") or {}).get("image"):
            problems.append(f"{where}: no container image")
        if (container.get("docker") or {}).get("privileged"):
            problems.append(f"{where}: privileged container")
        if not all(isinstance(v, str) for v in (app.get("env") or {}).values()):
            problems.append(f"{where}: env values must be strings")
        networks = app.get("networks") or []
        if not networks or any(n.get("mode") not in NETWORK_MODES for n in networks):
            problems.append(f"{where}: networks {networks}")
        if any(n.get("mode") == "container" and not n.get("name") for n in networks):
            problems.append(f"{where}: a container network needs its name")
        port_mappings = container.get("portMappings") or []
        port_names = {p.get("name") for p in port_mappings}
        health_checks = app.get("healthChecks") or []
        if not health_checks:
            problems.append(f"{where}: no health check, a hung task is never replaced")
        for index, check in enumerate(health_checks):
            if check.get("protocol") not in HEALTH_PROTOCOLS:
                problems.append(f"{where}: healthChecks[{index}] protocol {check.get('protocol')}")
            if not 0 <= check.get("portIndex", 0) < max(len(port_mappings), 1):
                problems.append(f"{where}: healthChecks[{index}] portIndex {check.get('portIndex')} is no port mapping")
            if check.get("maxConsecutiveFailures", 3) < 1:
                problems.append(f"{where}: healthChecks[{index}] never kills a failing task")
        for index, check in enumerate(app.get("readinessChecks") or []):
            if check.get("portName") not in port_names:
                problems.append(f"{where}: readinessChecks[{index}] portName {check.get('portName')!r} is no port mapping")
            if check.get("timeoutSeconds", 10) >= check.get("intervalSeconds", 30):
                problems.append(f"{where}: readinessChecks[{index}] timeoutSeconds must be below intervalSeconds")
        strategy = app.get("upgradeStrategy") or {}
        for field in ("minimumHealthCapacity", "maximumOverCapacity"):
            if not 0 <= strategy.get(field, 1) <= 1:
                problems.append(f"{where}: upgradeStrategy.{field} outside 0..1")
        for dependency in app.get("dependencies") or []:
            if dependency not in all_apps:
                problems.append(f"{where}: depends on {dependency}, no app of the group")
    return problems


def _cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if str(quantity).endswith("m") else float(quantity)


def _mebibytes(quantity: str) -> float:
    return float(quantity[:-2]) * MIB[quantity[-2:]]


def k8s_match_problems(group: Mapping[str, Any], deployments: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Each Deployment of k8s/base has its app: same image, command, env names, instances, limits, probes, privileges."""
    problems = []
    replicas = k8s_replicas()  # the autoscalers' minimums: the Deployments leave their scale to them
    all_apps = apps(group)
    for name, deployment in deployments.items():
        app_id = f"{GROUP_ID}/{name}"
        app = all_apps.get(app_id)
        if app is None:
            problems.append(f"no app {app_id} for Deployment {name}")
            continue
        where = f"app {app_id}"
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        if (app.get("container") or {}).get("docker", {}).get("image") != container["image"]:
            problems.append(f"{where}: image {app['container']['docker'].get('image')}, the Deployment runs {container['image']}")
        command = container.get("command", []) + container.get("args", [])
        if app.get("args") != command:
            problems.append(f"{where}: args {app.get('args')}, the Deployment runs {command}")
        if app.get("instances") != replicas.get(name):
            problems.append(f"{where}: {app.get('instances')} instances, the Deployment has {replicas.get(name)} replicas")
        k8s_env = {e["name"] for e in container.get("env", [])}
        if set(app.get("env") or {}) != k8s_env:
            problems.append(f"{where}: env names {sorted(set(app.get('env') or {}) ^ k8s_env)} differ from the Deployment's")
        for variable in ("CALCULATOR_VERSION", "DATA_DIR", "BIND", "LOG_LEVEL", "KEEPALIVE_SECONDS", "SHUTDOWN_DRAIN_SECONDS", "GRACEFUL_TIMEOUT_SECONDS", "CALCULATOR_TIMEOUT_SECONDS"):
            value = next((str(e.get("value")) for e in container.get("env", []) if e["name"] == variable), None)
            if value is not None and (app.get("env") or {}).get(variable) != value:
                problems.append(f"{where}: {variable}={(app.get('env') or {}).get(variable)!r}, the Deployment sets {value!r}")
        limits = container["resources"]["limits"]
        if not math.isclose(app.get("cpus", 0), _cpu(limits["cpu"])) or not math.isclose(app.get("mem", 0), _mebibytes(limits["memory"])):
            problems.append(f"{where}: cpus {app.get('cpus')} mem {app.get('mem')}, the Deployment's limits are {limits}")
        if app.get("taskKillGracePeriodSeconds") != pod.get("terminationGracePeriodSeconds", 30):
            problems.append(f"{where}: taskKillGracePeriodSeconds {app.get('taskKillGracePeriodSeconds')}, the Deployment gives {pod.get('terminationGracePeriodSeconds')}")
        health = [c for c in app.get("healthChecks") or [] if c.get("protocol") == "MESOS_HTTP"]
        if [c.get("path") for c in health] != [container["livenessProbe"]["httpGet"]["path"]]:
            problems.append(f"{where}: no MESOS_HTTP health check on {container['livenessProbe']['httpGet']['path']}")
        readiness = app.get("readinessChecks") or []
        if [c.get("path") for c in readiness] != [container["readinessProbe"]["httpGet"]["path"]]:
            problems.append(f"{where}: no readiness check on {container['readinessProbe']['httpGet']['path']}")
        strategy = app.get("upgradeStrategy") or {}
        rolling = deployment["spec"].get("strategy", {}).get("rollingUpdate", {})
        if rolling.get("maxUnavailable") == 0 and strategy.get("minimumHealthCapacity") != 1:
            problems.append(f"{where}: upgradeStrategy.minimumHealthCapacity {strategy.get('minimumHealthCapacity')}, the Deployment keeps every replica (maxUnavailable 0)")
        surge = rolling.get("maxSurge", 1)
        if math.floor(strategy.get("maximumOverCapacity", 1) * app.get("instances", 0) + 1e-9) < surge:
            problems.append(f"{where}: upgradeStrategy.maximumOverCapacity starts fewer than {surge} new instance(s) at once")
        problems += _privilege_problems(where, app, pod, container)
    return problems


def _privilege_problems(where: str, app: Mapping[str, Any], pod: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
    problems = []
    parameters = _parameters(app)
    context = {**(pod.get("securityContext") or {}), **(container.get("securityContext") or {})}
    user = f"{context.get('runAsUser')}:{context.get('runAsGroup')}"
    if ("user", user) not in parameters:
        problems.append(f"{where}: docker user is not {user}")
    if context.get("readOnlyRootFilesystem") and ("read-only", "true") not in parameters:
        problems.append(f"{where}: root filesystem not read-only")
    if "ALL" in (context.get("capabilities") or {}).get("drop", []) and ("cap-drop", "ALL") not in parameters:
        problems.append(f"{where}: capabilities not dropped")
    if context.get("allowPrivilegeEscalation") is False and ("security-opt", "no-new-privileges") not in parameters:
        problems.append(f"{where}: no no-new-privileges")
    tmpfs = [value.split(":", 1)[0] for key, value in parameters if key == "tmpfs"]
    for mount in container.get("volumeMounts", []):
        if mount["mountPath"] not in tmpfs:
            problems.append(f"{where}: {mount['mountPath']} is not writable (no tmpfs)")
    return problems


def discovery_problems(group: Mapping[str, Any]) -> list[str]:
    """URLs in env name apps of this group by their Mesos-DNS name, on a port the app maps."""
    problems = []
    all_apps = apps(group)
    by_name = {mesos_dns_name(app_id): app for app_id, app in all_apps.items()}
    for app_id, app in all_apps.items():
        for variable, value in (app.get("env") or {}).items():
            if not (variable.endswith(("_URL", "_ENDPOINT")) and value.startswith("http")):
                continue
            parts = urlsplit(value)
            target = by_name.get(parts.hostname)
            if target is None:
                problems.append(f"app {app_id}: {variable} {value} names no app of the group")
                continue
            ports = {p.get("containerPort") for p in (target.get("container") or {}).get("portMappings") or []}
            if parts.port not in ports:
                problems.append(f"app {app_id}: {variable} port {parts.port} is not mapped by {parts.hostname}")
    return problems
