"""What the benchmark runs: the three paths, ending at one and the same calculator process.

- mesh: a ``localmesh.mesh.Mesh`` of the repository's manifests with one
  replica each (gateway ×1, calculator-v1 ×1, v2 ×0) and the policy file
  virtual-service-calculator-100-0, so every request goes ingress Envoy -> gateway-0 -> its sidecar
  Envoy -> calculator-v1-0. The manifests are copied to a scratch directory and
  only the replicas are changed (the autoscalers' minReplicas): the processes, environment, Envoy bootstraps
  (routes, retries, timeouts, access logs, circuit breakers) are the real ones.
- gateway: a second gateway process, from the same Deployment and
  ``replica_spec`` as the mesh's, whose ``CALCULATOR_URL`` names calculator-v1-0
  directly (no sidecar): gateway -> calculator.
- direct: calculator-v1-0 itself.

So each path has the same app processes as the one before it, plus what it adds:
direct 1 process; gateway 2; mesh 2 plus 2 Envoys. Two more calculators from the
same Deployment, alike but for ``TELEMETRY_ENABLED``, serve the telemetry on/off
comparison.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from localmesh.mesh import Mesh, MeshOptions
from localmesh.processes import ServiceProcess, free_port
from localmesh.translate.kube import HORIZONTAL_POD_AUTOSCALER, autoscaler_target
from localmesh.workloads import Workload, replica_spec

ROOT = Path(__file__).resolve().parents[1]
POLICY = ("virtual-service-calculator-100-0",)  # every request to v1: one calculator behind the mesh
REPLICAS = {"gateway": 1, "calculator-v1": 1, "calculator-v2": 0}
PATHS = ("direct", "gateway", "mesh")
# Tests and benchmarks stop their processes at once: no readiness drain.
COMMON_ENV = {"SHUTDOWN_DRAIN_SECONDS": "0"}


def one_replica_manifests(source: Path, target: Path, replicas: dict[str, int] = REPLICAS) -> Path:
    """Copy k8s/base and istio/ to ``target`` with the Deployments' replicas set; returns ``target``.

    A Deployment an autoscaler scales runs its minReplicas (the manifests leave ``spec.replicas``
    to it): that is what is set there; any other Deployment gets ``spec.replicas``.
    """
    shutil.copytree(source / "k8s" / "base", target / "k8s" / "base")
    shutil.copytree(source / "istio", target / "istio")
    files = {path: list(yaml.safe_load_all(path.read_text())) for path in (target / "k8s" / "base").glob("*.yaml")}
    autoscaled = set()
    for documents in files.values():
        for document in documents:
            if isinstance(document, dict) and document.get("kind") == HORIZONTAL_POD_AUTOSCALER:
                (kind, _, name), _ = autoscaler_target("", document["spec"])
                if kind == "Deployment" and name in replicas:
                    document["spec"]["minReplicas"] = replicas[name]
                    document["spec"]["maxReplicas"] = max(replicas[name], 1)
                    autoscaled.add(name)
    for documents in files.values():
        for document in documents:
            if isinstance(document, dict) and document.get("kind") == "Deployment":
                name = document["metadata"]["name"]
                if name in replicas and name not in autoscaled:
                    document["spec"]["replicas"] = replicas[name]
    for path, documents in files.items():
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return target


@dataclass
class Topology:
    work_dir: Path
    mesh: Mesh | None = None
    extra: dict[str, ServiceProcess] = field(default_factory=dict)

    # -- start and stop ------------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> "Topology":
        root = one_replica_manifests(ROOT, self.work_dir / "manifests")
        self.mesh = Mesh(
            MeshOptions(
                root=root,
                run_dir=self.work_dir / "mesh",
                ingress_port=free_port(),
                policy=POLICY,
                common_env=COMMON_ENV,
            )
        )
        try:
            self.mesh.start(timeout)
            calculator = self.calculator
            direct_url = f"{calculator.url}/calcular"
            gateway = self._workload("gateway")
            calculator_v1 = self._workload("calculator-v1")
            self._add("gateway-direct", gateway, {"CALCULATOR_URL": direct_url})
            self._add("calculator-telemetry-on", calculator_v1, {"TELEMETRY_ENABLED": "true"})
            self._add("calculator-telemetry-off", calculator_v1, {"TELEMETRY_ENABLED": "false"})
            for service in self.extra.values():
                service.start()
            for service in self.extra.values():
                service.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _workload(self, name: str) -> Workload:
        return next(w for w in self.mesh.translation.workloads if w.name == name)

    def _add(self, name: str, workload: Workload, env: dict[str, str]) -> None:
        admin = free_port() if workload.has_admin else None  # its own: the mesh's replica holds the plan's
        spec = replica_spec(
            workload, 0, free_port(), self.work_dir / "data" / name, None, None, {**COMMON_ENV, **env}, admin
        )
        self.extra[name] = ServiceProcess(dataclasses.replace(spec, name=name), self.work_dir / "logs")

    def stop(self) -> None:
        for service in self.extra.values():
            service.stop(timeout=30)
        if self.mesh is not None:
            self.mesh.stop()

    def __enter__(self) -> "Topology":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what runs -----------------------------------------------------------------------------------

    @property
    def calculator(self) -> ServiceProcess:
        return self.mesh.services["calculator-v1-0"]

    def url(self, path: str) -> str:
        """The /calcular URL of a path (direct, gateway, mesh) or of an extra process."""
        if path == "direct":
            return f"{self.calculator.url}/calcular"
        if path == "gateway":
            return f"{self.extra['gateway-direct'].url}/calcular"
        if path == "mesh":
            return f"{self.mesh.ingress_url}/calcular"
        return f"{self.extra[path].url}/calcular"

    def envoy_pids(self) -> dict[str, int]:
        return {name: envoy.process.pid for name, envoy in self.mesh.envoys.items()}

    def app_pids(self, path: str) -> dict[str, int]:
        """The gunicorn masters a path's requests cross (their workers are their children)."""
        calculator = {"calculator-v1-0": self.calculator.pid}
        if path == "direct":
            return calculator
        if path == "gateway":
            return {"gateway-direct": self.extra["gateway-direct"].pid, **calculator}
        if path == "mesh":
            return {"gateway-0": self.mesh.services["gateway-0"].pid, **calculator}
        return {path: self.extra[path].pid}

    def server_pids(self, path: str) -> dict[str, int]:
        """Every server process of a path: its apps, and for the mesh its Envoys."""
        pids = self.app_pids(path)
        if path == "mesh":
            pids.update(self.envoy_pids())
        return pids

    def all_server_pids(self) -> list[int]:
        pids = [s.pid for s in self.mesh.services.values()] + [s.pid for s in self.extra.values()]
        return pids + list(self.envoy_pids().values())
