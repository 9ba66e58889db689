"""The local mesh: the manifests' replicas, an ingress Envoy and sidecar Envoys, on loopback.

``Mesh.start`` reads k8s/ and istio/, translates them, starts one gunicorn
process per replica, an Envoy playing Istio's ingress gateway, and one
outbound sidecar Envoy per replica of each workload that calls the mesh. A
supervisor thread restarts whatever dies, as a ReplicaSet would. The plan of
ports and the active scenario (its name and policy files) are written to
``state.json`` in the run directory, so another process (``python -m
localmesh scenario NAME``) can switch policy on the running Envoys through
their watched files.
``Mesh.rolling_restart`` replaces every replica in turn, as a Deployment's
rolling update does: the new process is ready in the Envoys' endpoints before
the old one leaves them, and only then is the old one sent SIGTERM.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from localmesh.envoy import EnvoyProcess
from localmesh.loader import Layout, load_mesh
from localmesh.processes import ServiceProcess, free_port, free_ports
from localmesh.prometheus import SLO_RULES, AlertmanagerProcess, PrometheusProcess, Target, scrape_config
from localmesh.runstate import alive, end_orphans, process_start
from localmesh.translate import (
    Manifests,
    Resource,
    TranslationError,
    ingress_bootstrap,
    local_endpoints,
    read_manifests,
    sidecar_bootstrap,
    with_pod_ports,
)
from localmesh.workloads import ADMIN_BIND, Workload, replica_spec, workload

STATE_FILE = "state.json"
INGRESS = "ingress"


@dataclass
class PortPlan:
    """Every port of one run: replicas per Deployment, and each Envoy's listener and admin."""

    ingress: int
    ingress_admin: int
    replicas: dict[str, list[int]]  # "namespace/deployment" -> a port per replica
    sidecars: dict[str, tuple[int, int]]  # pod -> (listener, admin)
    admin: dict[str, int] = field(default_factory=dict)  # pod -> its admin surface (faults)

    @classmethod
    def allocate(cls, ingress_port: int, workloads: list[Workload], taken: Sequence[int] = ()) -> "PortPlan":
        pods = [w.pod(i) for w in workloads if w.calls_mesh for i in range(w.replicas)]
        with_admin = [w.pod(i) for w in workloads if w.has_admin for i in range(w.replicas)]
        # Drawn together, so that no two are the same port (nor the ingress's).
        count = 1 + sum(w.replicas for w in workloads) + 2 * len(pods) + len(with_admin)
        ports = iter(free_ports(count, exclude=[ingress_port, *taken]))
        return cls(
            ingress=ingress_port,
            ingress_admin=next(ports),
            replicas={w.deployment: [next(ports) for _ in range(w.replicas)] for w in workloads},
            sidecars={pod: (next(ports), next(ports)) for pod in pods},
            admin={pod: next(ports) for pod in with_admin},
        )


@dataclass(frozen=True)
class Translation:
    """What one scenario makes of the manifests."""

    manifests: Manifests
    workloads: list[Workload]
    bootstraps: dict[str, dict]  # Envoy name -> bootstrap


def workloads_of(resources: list[Resource], manifests: Manifests) -> list[Workload]:
    hosts = set(manifests.services)
    return [workload(r, hosts) for r in resources if r.kind == "Deployment"]


def translate(
    resources: list[Resource],
    plan: PortPlan | None,
    logs: Path,
    ingress_port: int,
    pod_ports: Mapping[str, Sequence[int]] | None = None,
    taken: Sequence[int] = (),
) -> tuple[Translation, PortPlan]:
    """Manifests to Envoy bootstraps on a port plan (a new plan when None).

    ``pod_ports`` puts pods at other ports than the plan's (none: out of the
    endpoints), as during a rolling restart.
    """
    manifests = read_manifests(resources)
    workloads = workloads_of(resources, manifests)
    plan = plan or PortPlan.allocate(ingress_port, workloads, taken)
    endpoints = with_pod_ports(local_endpoints(manifests, plan.replicas), pod_ports or {})
    bootstraps = {
        INGRESS: ingress_bootstrap(
            manifests,
            endpoints,
            listen_port=plan.ingress,
            admin_port=plan.ingress_admin,
            access_log_path=str(logs / "ingress-access.log"),
        )
    }
    for w in workloads:
        if not w.calls_mesh:
            continue
        for index in range(w.replicas):
            pod = w.pod(index)
            listen, admin = plan.sidecars[pod]
            bootstraps[f"{pod}-sidecar"] = sidecar_bootstrap(
                manifests,
                endpoints,
                workload=w.deployment,
                pod=pod,
                listen_port=listen,
                admin_port=admin,
                access_log_path=str(logs / f"{pod}-sidecar-access.log"),
            )
    return Translation(manifests, workloads, bootstraps), plan


@dataclass
class MeshOptions:
    root: Path
    run_dir: Path
    ingress_port: int = 8080
    # istio/scenarios/ files applied over istio/, and the scenario they belong to (make status shows it).
    policy: tuple[str, ...] = ()
    scenario: str = "base"
    # Per-pod environment on top of the manifest's, e.g. a fault knob on one
    # replica: {"calculator-v1-0": {"FAULT_FAILURE_RATE": "0.5"}}.
    pod_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # Environment for every replica, e.g. {"SHUTDOWN_DRAIN_SECONDS": "0"} in tests.
    common_env: dict[str, str] = field(default_factory=dict)
    otlp_endpoint: str | None = None
    # Start Debian's Prometheus on this port, scraping every replica and Envoy.
    prometheus_port: int | None = None
    scrape_interval: str = "5s"
    # The rules that Prometheus loads (slo/rules.yaml; a test may give a copy with shorter `for:`).
    rule_files: list[Path] = field(default_factory=lambda: [SLO_RULES])
    # Start Debian's Alertmanager on this port (with Prometheus only), which gets the rules' alerts.
    alertmanager_port: int | None = None


class Mesh:
    def __init__(self, options: MeshOptions, say: Callable[[str], None] = lambda line: None):
        self.options = options
        self.layout = Layout(options.root)
        self.say = say
        self.logs = options.run_dir / "logs"
        self.plan: PortPlan | None = None
        self.translation: Translation | None = None
        self.scenario = options.scenario
        self.policy = tuple(options.policy)
        self.services: dict[str, ServiceProcess] = {}  # by pod
        self.envoys: dict[str, EnvoyProcess] = {}
        self.prometheus: PrometheusProcess | None = None
        self.alertmanager: AlertmanagerProcess | None = None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._lock = threading.Lock()
        # Pods at other ports than the plan's while a rolling restart replaces them.
        self._pod_ports: dict[str, list[int]] = {}
        self.rollouts = 0  # rolling restarts completed

    # -- start and stop --------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        resources = load_mesh(self.layout, self.policy)
        self.logs.mkdir(parents=True, exist_ok=True)
        # Prometheus' port is chosen before the plan is drawn: no replica may be given it.
        taken = [p for p in (self.options.prometheus_port, self.options.alertmanager_port) if p is not None]
        self.translation, self.plan = translate(resources, None, self.logs, self.options.ingress_port, taken=taken)
        data_root = self.options.run_dir / "data"
        for w in self.translation.workloads:
            for index, port in enumerate(self.plan.replicas[w.deployment]):
                pod = w.pod(index)
                sidecar = self.plan.sidecars.get(pod, (None,))[0]
                env = {**self.options.common_env, **self.options.pod_env.get(pod, {})}
                spec = replica_spec(
                    w, index, port, data_root, sidecar, self.options.otlp_endpoint, env, self.plan.admin.get(pod)
                )
                self.services[pod] = ServiceProcess(spec, self.logs)
        unknown = set(self.options.pod_env) - set(self.services)
        if unknown:
            raise TranslationError(f"pod_env names no replica of the manifests: {sorted(unknown)}")
        for name, bootstrap in self.translation.bootstraps.items():
            admin = self.plan.ingress_admin if name == INGRESS else self.plan.sidecars[name.removesuffix("-sidecar")][1]
            self.envoys[name] = EnvoyProcess(name, self.options.run_dir / "envoy", admin)
        try:
            for service in self.services.values():
                service.start()
            for name, envoy in self.envoys.items():
                envoy.start(self.translation.bootstraps[name])
            with ThreadPoolExecutor(max_workers=8) as pool:
                waits = [pool.submit(s.wait_ready, timeout) for s in self.services.values()]
                waits += [pool.submit(e.wait_ready, timeout) for e in self.envoys.values()]
                for done in waits:
                    done.result()
            if self.options.prometheus_port is not None and self.options.alertmanager_port is not None:
                self.alertmanager = AlertmanagerProcess(self.options.run_dir / "alertmanager", self.options.alertmanager_port)
                self.alertmanager.start()
                self.alertmanager.wait_ready(timeout)
            if self.options.prometheus_port is not None:
                self.prometheus = PrometheusProcess(self.options.run_dir / "prometheus", self.options.prometheus_port)
                self.prometheus.start(self.scrape_config())
                self.prometheus.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.write_state(scenario=self.scenario, policy=self.policy)  # not a stale file's
        self._supervisor = threading.Thread(target=self._supervise, name="mesh-supervisor", daemon=True)
        self._supervisor.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(5)
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.alertmanager is not None:
            self.alertmanager.stop()
        # Front to back, as traffic flows: nothing new enters a service being stopped.
        envoys = list(self.envoys.values())
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda e: e.stop(), envoys))
            list(pool.map(lambda s: s.stop(timeout=30), list(self.services.values())))
        state = self.options.run_dir / STATE_FILE
        state.unlink(missing_ok=True)

    # -- supervision -----------------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stopping.wait(0.2):
            restarted = False
            with self._lock:
                for pod, service in self.services.items():
                    if not service.running() and not self._stopping.is_set():
                        self.say(f"{pod} exited (code {service.process.returncode}); restarting it")
                        # restart, not start: it also ends what the dead master left
                        # in its group (a worker still holding the port, still answering).
                        service.restart()
                        restarted = True
                for name, envoy in self.envoys.items():
                    if not envoy.running() and not self._stopping.is_set():
                        self.say(f"envoy {name} exited; restarting it")
                        envoy.restart()
                        restarted = True
            if restarted:
                self.write_state()

    # -- scenarios -------------------------------------------------------------------------------

    def switch(self, policy: Sequence[str], scenario: str) -> None:
        """Translate the manifests with other policy files and apply them to the running Envoys."""
        self._reconfigure(tuple(policy))
        self.write_state(scenario=scenario, policy=tuple(policy))

    def _reconfigure(self, policy: tuple[str, ...]) -> None:
        resources = load_mesh(self.layout, policy)
        translation, _ = translate(resources, self.plan, self.logs, self.options.ingress_port, self._pod_ports)
        _check_same_workloads(self.translation, translation)
        for name, envoy in self.envoys.items():
            envoy.reconfigure(translation.bootstraps[name])
        self.translation = translation

    # -- rolling restart -------------------------------------------------------------------------

    def rolling_restart(self, pods: Iterable[str] | None = None, timeout: float = 60.0) -> list[str]:
        """Replace every replica (or ``pods``) in turn, as ``kubectl rollout restart`` does with the
        manifests' strategy (maxSurge 1, maxUnavailable 0): no request finds a replica gone.

        For each: a new process on a new port, ready; the Envoys' endpoints get it
        beside the old one, then lose the old one; only then the old one gets
        SIGTERM and drains (its requests in flight finish). A sidecar Envoy stays
        as it is: the restart is of the app container.
        """
        done = []
        for pod in list(pods if pods is not None else self.services):
            self._replace(pod, timeout)
            done.append(pod)
        self.rollouts += 1
        if self.prometheus is not None:
            # Its targets are the replicas' ports, which have changed.
            self.prometheus.stop()
            self.prometheus.start(self.scrape_config())
        self.write_state()
        return done

    def _replace(self, pod: str, timeout: float) -> None:
        old = self.services[pod]
        deployment, index = self._replica_of(pod)
        env = dict(old.spec.env)
        if pod in self.plan.admin:  # both run a while: the new one's admin surface needs its own port
            env[ADMIN_BIND] = f"127.0.0.1:{free_port()}"
        new = ServiceProcess(replace(old.spec, port=free_port(), env=env), self.logs)
        new.restarts = old.restarts
        self.say(f"{pod}: new replica on port {new.spec.port}")
        new.start()
        try:
            new.wait_ready(timeout)
        except BaseException:
            new.stop(timeout=5)
            raise
        policy = self._current_policy()
        self._pod_ports[pod] = [old.spec.port, new.spec.port]  # the surge replica, ready, joins
        self._reconfigure(policy)
        self._pod_ports[pod] = [new.spec.port]  # the old one leaves the endpoints before SIGTERM
        self._reconfigure(policy)
        with self._lock:  # from now on the supervisor watches the new process
            self.services[pod] = new
            self.plan.replicas[deployment][index] = new.spec.port
            if pod in self.plan.admin:
                self.plan.admin[pod] = int(env[ADMIN_BIND].rpartition(":")[2])
            del self._pod_ports[pod]
        self.write_state()
        old.stop(timeout=timeout)
        self.say(f"{pod}: old replica stopped (code {old.process.returncode})")

    def _replica_of(self, pod: str) -> tuple[str, int]:
        for w in self.translation.workloads:
            for index in range(w.replicas):
                if w.pod(index) == pod:
                    return w.deployment, index
        raise KeyError(pod)

    def _current_policy(self) -> tuple[str, ...]:
        state = read_state(self.options.run_dir)  # another process may have switched it
        return tuple(state.get("policy", ())) if state else self.policy

    # -- what runs -------------------------------------------------------------------------------

    def pod_labels(self, pod: str) -> dict[str, str]:
        """The labels a cluster's Prometheus gives a pod's series."""
        for w in self.translation.workloads:
            if pod in (w.pod(i) for i in range(w.replicas)):
                return {"namespace": w.namespace, **w.labels, "pod": pod}
        raise KeyError(pod)

    def scrape_config(self) -> dict:
        apps = [
            Target(f"127.0.0.1:{s.spec.port}", self.pod_labels(pod)) for pod, s in self.services.items()
        ]
        sidecars = [
            Target(f"127.0.0.1:{e.admin_port}", self.pod_labels(name.removesuffix("-sidecar")))
            for name, e in self.envoys.items()
            if name != INGRESS
        ]
        ingress = Target(
            f"127.0.0.1:{self.plan.ingress_admin}",
            {"namespace": "istio-system", "app": "istio-ingressgateway", "pod": "istio-ingressgateway"},
        )
        alertmanager = f"127.0.0.1:{self.alertmanager.port}" if self.alertmanager is not None else None
        return scrape_config(
            apps, sidecars, ingress, self.options.scrape_interval, self.options.rule_files, alertmanager
        )

    @property
    def ingress_url(self) -> str:
        return f"http://127.0.0.1:{self.plan.ingress}"

    def pods_of(self, deployment_name: str) -> list[ServiceProcess]:
        return [s for pod, s in self.services.items() if pod.rsplit("-", 1)[0] == deployment_name]

    def state(self) -> dict:
        return {
            "root": str(self.options.root),
            "run_dir": str(self.options.run_dir),
            # python -m localmesh restart signals it (SIGUSR1) and waits for rollouts to grow.
            "runner_pid": os.getpid(),
            # With each pid its start time: a later command tells the process from a stranger that
            # got its pid after a SIGKILL (localmesh.runstate).
            "runner_start": process_start(os.getpid()),
            "rollouts": self.rollouts,
            "scenario": self.scenario,
            "policy": list(self.policy),
            "ingress_url": self.ingress_url,
            "plan": asdict(self.plan),
            "services": {
                pod: {
                    "pid": s.pid,
                    "start": process_start(s.pid),
                    "url": s.url,
                    "admin_url": f"http://127.0.0.1:{self.plan.admin[pod]}" if pod in self.plan.admin else None,
                    "log": str(s.log_path),
                    "restarts": s.restarts,
                }
                for pod, s in self.services.items()
            },
            "prometheus_url": self.prometheus.url if self.prometheus else None,
            "alertmanager_url": self.alertmanager.url if self.alertmanager else None,
            "prometheus": {"pid": self.prometheus.pid, "start": process_start(self.prometheus.pid)}
            if self.prometheus
            else None,
            "alertmanager": {"pid": self.alertmanager.pid, "start": process_start(self.alertmanager.pid)}
            if self.alertmanager
            else None,
            "envoys": {
                name: {"pid": e.pid, "start": process_start(e.pid), "admin_port": e.admin_port, "log": str(e.log_path)}
                for name, e in self.envoys.items()
            },
            "enforced": [f"{r.kind} {r.namespace}/{r.name}" for r in self.translation.manifests.enforced],
            "cluster_only": [f"{r.kind} {r.namespace}/{r.name}" for r in self.translation.manifests.cluster_only],
        }

    def write_state(self, scenario: str | None = None, policy: tuple[str, ...] | None = None) -> None:
        """Record what runs; the scenario and policy are the ones given, else the ones on file
        (another process may have switched them), else the ones the mesh started with."""
        with state_lock(self.options.run_dir):
            previous = read_state(self.options.run_dir)
            if scenario is not None:
                self.scenario, self.policy = scenario, tuple(policy or ())
            elif previous:
                self.scenario, self.policy = previous["scenario"], tuple(previous.get("policy", ()))
            _write_state(self.options.run_dir, self.state())


@contextmanager
def state_lock(run_dir: Path) -> Iterator[None]:
    """One writer of the state file at a time: the runner (a restart, a rollout) or another
    process switching the scenario; each reads, changes and writes it whole under the lock."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(run_dir) / "state.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _write_state(run_dir: Path, state: Mapping) -> None:
    """Whole or not at all: a reader never sees a half-written file."""
    path = Path(run_dir) / STATE_FILE
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(state, indent=1))
    temporary.replace(path)


def _check_same_workloads(old: Translation, new: Translation) -> None:
    """A scenario changes Istio policy only: replicas and processes stay as they are."""
    if [asdict(w) for w in old.workloads] != [asdict(w) for w in new.workloads]:
        raise TranslationError("a scenario may replace Istio resources only, not Deployments")


def switch_running(run_dir: Path, policy: Sequence[str], scenario: str) -> dict:
    """Switch the policy of a mesh started by another process (``make up``), through its files."""
    with state_lock(run_dir):
        state = dict(running_state(run_dir))
        plan = PortPlan(**{**state["plan"], "sidecars": {k: tuple(v) for k, v in state["plan"]["sidecars"].items()}})
        layout = Layout(Path(state["root"]))
        translation, _ = translate(load_mesh(layout, policy), plan, run_dir / "logs", plan.ingress)
        for name, bootstrap in translation.bootstraps.items():
            info = state["envoys"][name]
            EnvoyProcess.attach(name, run_dir / "envoy", info["admin_port"]).reconfigure(bootstrap)
        state["scenario"], state["policy"] = scenario, list(policy)
        _write_state(run_dir, state)
    return state


def read_state(run_dir: Path) -> Mapping | None:
    """The state file as written, whether its runner lives or not (``running_state`` checks)."""
    path = run_dir / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else None


class MeshNotRunning(RuntimeError):
    """No ``make up`` runs from the run directory (its message says why, in English)."""


class MeshAlreadyRunning(RuntimeError):
    """A ``make up`` runs from the run directory already."""


def running_state(run_dir: Path) -> Mapping:
    """The state of the mesh that runs from ``run_dir``, for another process: what reads it to
    signal or reach the mesh calls this, never ``read_state``.

    A state file whose runner is gone (a ``make up`` killed with SIGKILL cannot remove it) is stale:
    the processes it left behind that are still the ones recorded are ended, the file removed, and
    MeshNotRunning says so. Nothing is signalled that is not the process recorded.
    """
    state = read_state(run_dir)
    if state is None:
        raise MeshNotRunning("the local mesh is not running (make up)")
    if alive(state.get("runner_pid"), state.get("runner_start")):
        return state
    raise MeshNotRunning(f"the local mesh is not running: {clear_stale_state(run_dir, state)}; make up starts it")


def clear_stale_state(run_dir: Path, state: Mapping) -> str:
    """End what a killed runner left and remove its state file; what was done, in a sentence."""
    ended = end_orphans(state)
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    left = f", and stopped the {len(ended)} process(es) it had left running" if ended else ""
    return (
        f"its runner (pid {state.get('runner_pid')}) was killed and left {run_dir / STATE_FILE} behind: "
        f"removed that stale state{left}"
    )


def claim_run_dir(run_dir: Path) -> str | None:
    """Before a new ``make up``: refuse when one runs from ``run_dir`` already; clear a stale state
    (what a killed one left) and say what was done, else None."""
    state = read_state(run_dir)
    if state is None:
        return None
    if alive(state.get("runner_pid"), state.get("runner_start")):
        raise MeshAlreadyRunning(
            f"a local mesh already runs from {run_dir} (pid {state['runner_pid']}, {state.get('ingress_url')}): "
            "stop it with Ctrl-C where it runs, or give this one another LOCALMESH_RUN_DIR"
        )
    return f"A previous local mesh did not stop: {clear_stale_state(run_dir, state)}."
