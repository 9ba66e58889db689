"""The replicas a scenario names, from the manifests (k8s/base): pods as the local mesh names them.

A Deployment ``calculator-v1`` of 2 replicas runs pods ``calculator-v1-0`` and ``calculator-v1-1``
locally; on kind the same index picks the Deployment's pods in name order (``scenarios.kind``).
"""

from __future__ import annotations

from dataclasses import dataclass

from localmesh.loader import Layout, load_kustomization
from localmesh.workloads import workload

SIDECAR_SUFFIX = "-sidecar"  # the local mesh's outbound Envoy of a pod: "gateway-0-sidecar"


@dataclass(frozen=True)
class Topology:
    calculators: dict[str, tuple[str, ...]]  # subset (the version label) -> pods
    gateways: tuple[str, ...]

    @property
    def calculator_pods(self) -> tuple[str, ...]:
        return tuple(pod for subset in sorted(self.calculators) for pod in self.calculators[subset])

    @property
    def sidecars(self) -> tuple[str, ...]:
        """The gateway pods' sidecars: the Envoys that call the calculator."""
        return tuple(pod + SIDECAR_SUFFIX for pod in self.gateways)

    def pod(self, subset: str, index: int = 0) -> str:
        return self.calculators[subset][index]


def read_topology(layout: Layout) -> Topology:
    workloads = [workload(r, set()) for r in load_kustomization(layout.k8s, layout.root) if r.kind == "Deployment"]
    calculators = {
        w.labels["version"]: tuple(w.pod(i) for i in range(w.replicas)) for w in workloads if w.labels.get("app") == "calculator"
    }
    (gateway,) = [w for w in workloads if w.labels.get("app") == "gateway"]
    return Topology(calculators, tuple(gateway.pod(i) for i in range(gateway.replicas)))
