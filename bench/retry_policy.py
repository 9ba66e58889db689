"""What the mesh retries on a POST, and what counts towards ejection, measured side by side.

``python -m bench.retry_policy [--old-app DIR]`` runs real local meshes with two
policies for the calculator (its VirtualService's ``retryOn`` and its
DestinationRule's outlier detection, everything else as in istio/):

- ``5xx``: retry any 5xx, eject after 3 consecutive 5xx (the policy until issue 15);
- ``gateway-error``: retry 502/503/504 and connection failures, eject after 3
  consecutive gateway errors, never on an application's 500 (the shipped policy);

and for each, three cases:

- half-failing: calculator-v1-0 answers 503 to half of its requests (FAULT_FAILURE_RATE);
- query of death: 20 requests that make the app fail the same way on every host.
  Our calculator answers them 400 now, so this case needs an app that still fails
  with 500: ``--old-app`` names a checkout of commit 2fa91f6 (``git worktree add DIR
  2fa91f6``), whose calculator raised RecursionError on 1,000 ``[``;
- kill-restart: v1 replicas SIGKILLed under load (two, 17 s apart; five, 10 s
  apart, alternating), each restarted by the runner in about a second, with
  each (baseEjectionTime, interval) of EJECTIONS;
- half-failing-long: the half-failing replica under 60 s of steady load, with
  each of EJECTIONS: what a shorter ejection costs (the replica comes back
  sooner and is ejected again, each time for longer).

and the same for the gateways, behind the ingress (their DestinationRule's
outlier detection, istio/gateway-destinationrule.yaml, with each of EJECTIONS):

- gateway-kill-restart: gateway-0 then gateway-1 SIGKILLed 17 s apart under load;
- gateway-crash-loop: gateway-0 SIGKILLed every 4 s for 40 s (a replica that keeps
  dying: what a shorter ejection costs, as it gets traffic again sooner).

It prints one JSON line per case; docs/fault-tolerance.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from localmesh.mesh import Mesh, MeshOptions
from localmesh.observe import access_log_path, calcular_requests, flags_of, read_access_log, subset_cluster
from localmesh.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
VS = "istio/calculator-virtualservice.yaml"
DR = "istio/calculator-destinationrule.yaml"
GATEWAY_DR = "istio/gateway-destinationrule.yaml"
POLICIES = {
    "5xx": ("5xx,reset,connect-failure,refused-stream", {"consecutive5xxErrors": 3}),
    "gateway-error": (
        "gateway-error,reset,connect-failure,refused-stream",
        {"consecutive5xxErrors": 0, "consecutiveGatewayErrors": 3},
    ),
}
SIDECARS = ("gateway-0-sidecar", "gateway-1-sidecar")
INGRESS = "ingress"
# The ingress Envoy's cluster of the gateway Service (no subsets).
GATEWAY_CLUSTER = subset_cluster("", "gateway")
# (baseEjectionTime, interval) compared in the kill and long half-failing cases.
EJECTIONS = [("30s", "5s"), ("10s", "1s"), ("5s", "1s")]
QUERY_OF_DEATH = b"[" * 1000


def policy_root(destination: Path, policy: str, base_ejection: str = "30s", interval: str = "5s") -> Path:
    """k8s/base and istio/ with the calculator's retryOn and outlier detection of ``policy``."""
    import shutil

    shutil.copytree(ROOT / "k8s" / "base", destination / "k8s" / "base")
    shutil.copytree(ROOT / "istio", destination / "istio")
    retry_on, ejection = POLICIES[policy]
    vs_path, dr_path = destination / VS, destination / DR
    vs = yaml.safe_load(vs_path.read_text())
    for route in vs["spec"]["http"]:
        route["retries"]["retryOn"] = retry_on
    vs_path.write_text(yaml.safe_dump(vs, sort_keys=False))
    dr = yaml.safe_load(dr_path.read_text())
    outlier = dr["spec"]["trafficPolicy"]["outlierDetection"]
    for key in ("consecutive5xxErrors", "consecutiveGatewayErrors"):
        outlier.pop(key, None)
    outlier.update(ejection, baseEjectionTime=base_ejection, interval=interval)
    dr_path.write_text(yaml.safe_dump(dr, sort_keys=False))
    return destination


def gateway_root(destination: Path, base_ejection: str, interval: str) -> Path:
    """k8s/base and istio/ as they are, but the gateways' ejection (baseEjectionTime, interval)."""
    import shutil

    shutil.copytree(ROOT / "k8s" / "base", destination / "k8s" / "base")
    shutil.copytree(ROOT / "istio", destination / "istio")
    path = destination / GATEWAY_DR
    rule = yaml.safe_load(path.read_text())
    rule["spec"]["trafficPolicy"]["outlierDetection"].update(baseEjectionTime=base_ejection, interval=interval)
    path.write_text(yaml.safe_dump(rule, sort_keys=False))
    return destination


def ingress_stat(mesh: Mesh, stat: str) -> int:
    """A counter of the ingress Envoy's cluster of the gateways."""
    name = f"cluster.{GATEWAY_CLUSTER}.{stat}"
    return mesh.envoys[INGRESS].stats(name).get(name, 0)


def sidecar_sum(mesh: Mesh, stat: str) -> int:
    total = 0
    for sidecar in SIDECARS:
        for subset in ("v1", "v2"):
            name = f"cluster.{subset_cluster(subset)}.{stat}"
            total += mesh.envoys[sidecar].stats(name).get(name, 0)
    return total


def app_statuses(mesh: Mesh) -> Counter:
    total: Counter = Counter()
    for pod, service in mesh.services.items():
        if pod.startswith("calculator"):
            total.update(calcular_requests(service.url))
    return total


def post(port: int, body: bytes, timeout: float = 10.0) -> int:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/calcular", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        connection.close()


def started_mesh(root: Path, run_dir: Path, **options) -> Mesh:
    mesh = Mesh(MeshOptions(root=root, run_dir=run_dir, ingress_port=free_port(), **options))
    mesh.start()
    return mesh


def half_failing(root: Path, work: Path, requests: int) -> dict:
    mesh = started_mesh(root, work, pod_env={"calculator-v1-0": {"FAULT_FAILURE_RATE": "0.5"}})
    try:
        body = json.dumps({"operacion": "sumar", "numero1": 2, "numero2": 3}).encode()
        statuses = Counter(post(mesh.plan.ingress, body) for _ in range(requests))
        return {
            "client_success": round(statuses[200] / requests, 4),
            "client_statuses": dict(statuses),
            "retries": sidecar_sum(mesh, "upstream_rq_retry"),
            "ejections": sidecar_sum(mesh, "outlier_detection.ejections_enforced_total"),
        }
    finally:
        mesh.stop()


def query_of_death(root: Path, work: Path, old_app: Path) -> dict:
    mesh = started_mesh(root, work, common_env={"PYTHONPATH": str(old_app)})
    try:
        statuses = Counter(post(mesh.plan.ingress, QUERY_OF_DEATH) for _ in range(20))
        body = json.dumps({"operacion": "sumar", "numero1": 2, "numero2": 3}).encode()
        after = Counter(post(mesh.plan.ingress, body) for _ in range(100))
        return {
            "client_statuses": dict(statuses),
            "app_attempts": dict(app_statuses(mesh)),
            "retries": sidecar_sum(mesh, "upstream_rq_retry"),
            "ejections": sidecar_sum(mesh, "outlier_detection.ejections_enforced_total"),
            "normal_after": dict(after),
        }
    finally:
        mesh.stop()


def kill_restart(
    root: Path, work: Path, pods: list[str], gap: float, seconds: float = 0.0, pod_env: dict | None = None
) -> dict:
    """Steady load (4 clients, ~20 req/s each) while ``pods`` are SIGKILLed ``gap`` apart; at least ``seconds``."""
    import threading

    mesh = started_mesh(root, work, pod_env=pod_env or {})
    try:
        body = json.dumps({"operacion": "sumar", "numero1": 2, "numero2": 3}).encode()
        statuses: Counter = Counter()
        stop = threading.Event()
        lock = threading.Lock()

        def client():
            while not stop.is_set():
                status = post(mesh.plan.ingress, body)
                with lock:
                    statuses[status] += 1
                stop.wait(0.05)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(5)  # a steady load before the first kill: the pace is what is measured
        for pod in pods:
            old_pid = mesh.services[pod].pid
            killed = time.monotonic()
            os.killpg(old_pid, signal.SIGKILL)
            wait_until(lambda: mesh.services[pod].pid not in (None, old_pid), 30, what=f"{pod} restarted")
            time.sleep(max(0.0, killed + gap - time.monotonic()))  # the schedule is what is measured
        time.sleep(max(0.0, seconds - 5))
        stop.set()
        for thread in threads:
            thread.join(15)
        total = sum(statuses.values())
        failed_attempts = sum(
            calcular_requests(service.url)[503] for pod, service in mesh.services.items() if pod.startswith("calc")
        )
        return {"requests": total, "success": round(statuses[200] / total, 5), "statuses": dict(statuses),
                "ejections": sidecar_sum(mesh, "outlier_detection.ejections_enforced_total"),
                "retries": sidecar_sum(mesh, "upstream_rq_retry"), "app_503": failed_attempts,
                "ingress_ejections": ingress_stat(mesh, "outlier_detection.ejections_enforced_total"),
                "ingress_retries": ingress_stat(mesh, "upstream_rq_retry"),
                # What the clients' failures were, by the ingress's response flags and details:
                # UC (reset in flight, not retried) or UF/URX (refused, retries spent).
                "ingress_failures": dict(Counter(
                    f"{entry.get('response_code')} {','.join(flags_of(entry))} {entry.get('response_code_details')}"
                    for entry in read_access_log(access_log_path(work, INGRESS))[0]
                    if entry.get("response_code") != 200
                ))}
    finally:
        mesh.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-app", type=Path, help="a checkout of 2fa91f6, for the query-of-death case")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--cases", default="half-failing,query-of-death,kill-restart,half-failing-long,"
                        "gateway-kill-restart,gateway-crash-loop")
    parser.add_argument("--ejections", default=",".join(f"{base}/{interval}" for base, interval in EJECTIONS),
                        help="the (baseEjectionTime/interval) pairs compared, e.g. 30s/5s,5s/1s")
    args = parser.parse_args(argv)
    cases = args.cases.split(",")
    ejections = [tuple(pair.split("/")) for pair in args.ejections.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for policy in POLICIES:
            if "half-failing" in cases:
                root = policy_root(work / f"{policy}-half", policy)
                print(json.dumps({"policy": policy, "case": "half-failing",
                                  **half_failing(root, work / f"{policy}-half-run", args.requests)}), flush=True)
            if "query-of-death" in cases and args.old_app:
                root = policy_root(work / f"{policy}-qod", policy)
                print(json.dumps({"policy": policy, "case": "query-of-death",
                                  **query_of_death(root, work / f"{policy}-qod-run", args.old_app)}), flush=True)
        if "half-failing-long" in cases:
            for base, interval in ejections:
                name = f"half-long-{base}-{interval}"
                root = policy_root(work / name, "gateway-error", base, interval)
                figures = kill_restart(root, work / f"{name}-run", [], 0.0, 60.0,
                                       {"calculator-v1-0": {"FAULT_FAILURE_RATE": "0.5"}})
                print(json.dumps({"policy": "gateway-error", "baseEjectionTime": base, "interval": interval,
                                  "case": "half-failing replica, 60 s", **figures}), flush=True)
        if "kill-restart" in cases:
            schedules = {
                "2 kills 17 s apart": (["calculator-v1-0", "calculator-v1-1"], 17.0),
                "5 kills 10 s apart": (["calculator-v1-0", "calculator-v1-1"] * 2 + ["calculator-v1-0"], 10.0),
            }
            for label, (pods, gap) in schedules.items():
                for base, interval in ejections:
                    name = f"kill-{base}-{interval}-{len(pods)}"
                    root = policy_root(work / name, "gateway-error", base, interval)
                    print(json.dumps({"policy": "gateway-error", "baseEjectionTime": base, "interval": interval,
                                      "case": label, **kill_restart(root, work / f"{name}-run", pods, gap)}),
                          flush=True)
        gateway_schedules = {
            "gateway-kill-restart": ("gateway-0, then gateway-1, 17 s apart", ["gateway-0", "gateway-1"], 17.0),
            "gateway-crash-loop": ("gateway-0 killed every 4 s, 10 times", ["gateway-0"] * 10, 4.0),
        }
        for case, (label, pods, gap) in gateway_schedules.items():
            if case not in cases:
                continue
            for base, interval in ejections:
                name = f"{case}-{base}-{interval}"
                root = gateway_root(work / name, base, interval)
                print(json.dumps({"gateway baseEjectionTime": base, "interval": interval, "case": label,
                                  **kill_restart(root, work / f"{name}-run", pods, gap)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
