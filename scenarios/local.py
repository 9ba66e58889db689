"""The local backend: a scenario applied to a local mesh (``localmesh``), loaded through its ingress
and measured from the clients, the Envoys' access logs and counters, and the replicas' /metrics."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from typing import Callable

from calculator import admin_client
from localmesh.load import run_load
from localmesh.mesh import Mesh, MeshOptions, switch_running
from localmesh.observe import AccessLogTail, access_log_path, calcular_requests, flags_of, subset_cluster
from localmesh.processes import free_port, wait_until
from scenarios.catalogue import Scenario
from scenarios.measurement import Measurement, load_figures, summarize_calls
from scenarios.render import Progress
from scenarios.topology import Topology, read_topology

CLUSTER_STATS = (
    "upstream_rq_total",
    "upstream_rq_retry",
    "upstream_rq_retry_success",
    "upstream_rq_retry_limit_exceeded",
    "retry.upstream_rq_503",
    "upstream_rq_pending_overflow",
    "upstream_rq_timeout",
    "upstream_rq_per_try_timeout",
    "outlier_detection.ejections_enforced_total",
)
FAULT_STATS = ("aborts_injected", "delays_injected")
FAULT_PREFIX = "http.sidecar_outbound.fault."


# -- applying a scenario ----------------------------------------------------------------------------


def set_faults(admin_urls: dict[str, str], scenario: Scenario) -> None:
    """Every replica's fault as the scenario says: its own faults, none elsewhere. No restart."""
    unknown = sorted(set(scenario.faults) - set(admin_urls))
    if unknown:
        raise RuntimeError(f"{scenario.name}: no replica {', '.join(unknown)} with an admin surface here")
    for pod, url in admin_urls.items():
        fault = scenario.faults.get(pod)
        if fault is None:
            admin_client.clear_fault(url)
        else:
            admin_client.set_fault(url, fault.to_json())


def apply_to_mesh(mesh: Mesh, scenario: Scenario) -> None:
    """The scenario's policy on the mesh's Envoys and its faults on the replicas (this process's mesh)."""
    mesh.switch(scenario.policy, scenario.name)
    set_faults({pod: f"http://127.0.0.1:{port}" for pod, port in mesh.plan.admin.items()}, scenario)


def apply_running(run_dir, scenario: Scenario) -> dict:
    """The same, to the mesh another process runs (``make up``), through its state file."""
    state = switch_running(run_dir, scenario.policy, scenario.name)
    set_faults({pod: info["admin_url"] for pod, info in state["services"].items() if info.get("admin_url")}, scenario)
    return state


# -- measuring -------------------------------------------------------------------------------------


def _sidecar_counters(mesh: Mesh, pods: Topology) -> dict[str, dict[str, int]]:
    """Per sidecar: the subset clusters' counters and the fault filter's, as "v1.upstream_rq_retry"."""
    found = {}
    for sidecar in pods.sidecars:
        stats = mesh.envoys[sidecar].stats("cluster.outbound|80|")
        stats.update(mesh.envoys[sidecar].stats(FAULT_PREFIX))
        values = {}
        for subset in sorted(pods.calculators):
            for name in CLUSTER_STATS:
                values[f"{subset}.{name}"] = stats.get(f"cluster.{subset_cluster(subset)}.{name}", 0)
        for name in FAULT_STATS:
            values[f"fault.{name}"] = stats.get(FAULT_PREFIX + name, 0)
        found[sidecar] = values
    return found


# A slow replica may still be busy with attempts the sidecars gave up on (timeout: 24 attempts of
# 4 s on two replicas of 8 threads), and its /metrics waits for a free thread: up to 8 s there.
REPLICA_SCRAPE_TIMEOUT_SECONDS = 20.0


def _replica_counts(mesh: Mesh, pods: Topology) -> dict[str, Counter]:
    return {
        pod: calcular_requests(mesh.services[pod].url, REPLICA_SCRAPE_TIMEOUT_SECONDS) for pod in pods.calculator_pods
    }



class _Killer:
    """SIGKILLs a replica's whole process group once enough requests are answered, then times its return."""

    def __init__(self, mesh, pod: str, after: int, count: Callable[[], int], bound: float):
        self.mesh, self.pod, self.after, self.count, self.bound = mesh, pod, after, count, bound
        self.started = time.monotonic()
        self.info: dict | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"kill-{pod}", daemon=True)

    def _run(self) -> None:
        try:
            service = self.mesh.services[self.pod]
            wait_until(lambda: self.count() >= self.after, self.bound, interval=0.02, what=f"{self.after} requests answered")
            pid, restarts = service.pid, service.restarts
            os.killpg(pid, signal.SIGKILL)  # the gunicorn master and its worker: the whole pod
            killed_at = time.monotonic()
            self.info = {"pod": self.pod, "pid": pid, "at": killed_at - self.started, "back_after": None}
            wait_until(lambda: service.restarts > restarts and service.ready(), 30, what=f"{self.pod} back")
            self.info.update(back_after=time.monotonic() - killed_at, new_pid=service.pid)
        except BaseException as error:  # reported in the measurement's notes
            self.error = error


def measure_local(mesh: Mesh, scenario: Scenario, progress: Progress | None = None) -> Measurement:
    """Apply the scenario to a running mesh, load it through the ingress, and measure."""
    pods = read_topology(mesh.layout)
    apply_to_mesh(mesh, scenario)
    run_dir = mesh.options.run_dir
    ingress = AccessLogTail(access_log_path(run_dir, "ingress"))
    sidecars = [AccessLogTail(access_log_path(run_dir, s)) for s in pods.sidecars]
    counters_before, replicas_before = _sidecar_counters(mesh, pods), _replica_counts(mesh, pods)
    restarts_before = {pod: mesh.services[pod].restarts for pod in pods.calculator_pods}
    spec = scenario.load

    killer = None
    if scenario.kill:
        killer = _Killer(mesh, scenario.kill, int(scenario.kill_at * spec.requests), ingress.count, spec.bound_seconds())
        killer.thread.start()
    progress = progress or Progress(scenario.name, spec.requests)
    result = run_load(mesh.ingress_url, spec, on_tick=lambda elapsed: progress.tick(elapsed, ingress.count()))
    progress.finish(result.seconds, len(result.samples))
    notes = []
    if killer is not None:
        killer.thread.join(35)
        if killer.error is not None:
            notes.append(f"kill: {killer.error}")

    # Envoy writes its access log every 0.2 s: wait (bounded) for every request's line.
    def logged():
        return ingress.count() >= len(result.samples) and sum(t.count() for t in sidecars) >= len(result.samples)

    try:
        wait_until(logged, 5, what="every request in the access logs")
    except TimeoutError as error:
        notes.append(str(error))
    mirrored = None
    if scenario.mirrored:
        mirrored = _wait_for_copies(mesh, pods, replicas_before, notes)

    counters_after, replicas_after = _sidecar_counters(mesh, pods), _replica_counts(mesh, pods)
    envoy = Counter()
    for sidecar in pods.sidecars:
        for name, value in counters_after[sidecar].items():
            envoy[name] += value - counters_before[sidecar].get(name, 0)
    ejections = {
        sidecar: counters_after[sidecar]["v1.outlier_detection.ejections_enforced_total"]
        - counters_before[sidecar]["v1.outlier_detection.ejections_enforced_total"]
        for sidecar in pods.sidecars
    }
    replicas = {}
    for pod in pods.calculator_pods:
        if mesh.services[pod].restarts != restarts_before[pod]:
            # Its counters started again from zero with the new process: these are since then.
            replicas[pod] = dict(replicas_after[pod])
            notes.append(f"{pod} restarted: its answers counted since the restart")
        else:
            replicas[pod] = dict(replicas_after[pod] - replicas_before[pod])
    calls = summarize_calls([entry for tail in sidecars for entry in tail.read()])
    ingress_flags = Counter(flag for entry in ingress.read() for flag in flags_of(entry))
    return Measurement(
        where="local",
        **load_figures(result),
        ingress_flags=dict(ingress_flags),
        replicas=replicas,
        envoy=dict(envoy),
        ejections=ejections,
        mirrored=mirrored,
        killed=killer.info if killer else None,
        notes=notes,
        **calls,
    )


def _wait_for_copies(mesh: Mesh, pods: Topology, before: dict[str, Counter], notes: list[str]) -> dict[str, int]:
    """v1's and v2's 200s since ``before``, once v2 has answered as many copies (fire and forget: they lag)."""

    def answered():
        now = _replica_counts(mesh, pods)
        return {subset: sum((now[p] - before[p])[200] for p in pods.calculators[subset]) for subset in ("v1", "v2")}

    try:
        return wait_until(lambda: (a := answered())["v2"] >= a["v1"] and a, 10, what="the mirrored copies")
    except TimeoutError as error:
        notes.append(str(error))
        return answered()


def run_local(scenario: Scenario, root, run_dir, progress: Progress | None = None, say=lambda line: None) -> Measurement:
    """A mesh of its own for one scenario: started, given the scenario, measured, stopped."""
    options = MeshOptions(
        root=root,
        run_dir=run_dir,
        ingress_port=free_port(),
        # The demo stops the mesh right after measuring: no drain to wait for.
        common_env={"SHUTDOWN_DRAIN_SECONDS": "0"},
    )
    mesh = Mesh(options, say=say)
    say(f"starting the local mesh for {scenario.name}...")
    mesh.start()
    try:
        return measure_local(mesh, scenario, progress)
    finally:
        mesh.stop()
