"""The replicas a scenario names, from the manifests."""

from __future__ import annotations

from localmesh.loader import Layout
from scenarios.topology import read_topology
from tests.scenarios.test_catalogue import checkout_copy, edit
from tests.support import ROOT


def test_pods_are_named_as_the_local_mesh_runs_them():
    pods = read_topology(Layout(ROOT))
    assert pods.calculators == {"v1": ("calculator-v1-0", "calculator-v1-1"), "v2": ("calculator-v2-0",)}
    assert pods.calculator_pods == ("calculator-v1-0", "calculator-v1-1", "calculator-v2-0")
    assert pods.sidecars == ("gateway-0-sidecar", "gateway-1-sidecar")
    assert pods.pod("v1", 1) == "calculator-v1-1"


def test_a_scaled_deployment_gives_more_pods(tmp_path):
    root = checkout_copy(tmp_path)
    # The Deployments leave their scale to their autoscalers: the pods are minReplicas.
    edit(root / "k8s" / "base" / "gateway-horizontalpodautoscaler.yaml", "minReplicas: 2", "minReplicas: 3")
    assert read_topology(Layout(root)).sidecars == ("gateway-0-sidecar", "gateway-1-sidecar", "gateway-2-sidecar")
