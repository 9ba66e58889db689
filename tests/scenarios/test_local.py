"""Every scenario of the catalogue, end to end on the local mesh, passing its own expectation
(``-rP`` shows each verdict table). Faults are set at run time, so the scenarios share meshes:
one per set of faults, with the one that kills a replica last of its group."""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest

from scenarios.catalogue import catalogue, verdict
from scenarios.local import measure_local
from scenarios.render import render
from tests.support import ROOT, running_mesh
from tests.tools import needs_hey

SCENARIOS = catalogue(ROOT)


def _faults(name: str) -> str:
    return json.dumps({pod: f.to_json() for pod, f in SCENARIOS[name].faults.items()}, sort_keys=True)


def _order() -> list[str]:
    """The scenarios grouped by their faults, each group on a fresh mesh (a replica ejected by one
    scenario must not start the next one ejected); kill-replica last of its group."""
    groups: dict[str, list[str]] = {}
    for name in SCENARIOS:
        groups.setdefault(_faults(name), []).append(name)
    return [n for names in groups.values() for n in sorted(names, key=lambda n: SCENARIOS[n].kill is not None)]


class SharedMeshes:
    """One running mesh at a time, for the scenarios of one set of faults."""

    def __init__(self, tmp_path_factory):
        self.factory, self.key, self.stack, self.mesh = tmp_path_factory, None, ExitStack(), None

    def for_scenario(self, name):
        key = _faults(name)
        if key != self.key:
            self.close()
            self.mesh = self.stack.enter_context(running_mesh(self.factory.mktemp("scenario-mesh")))
            self.key = key
        return self.mesh

    def close(self):
        self.stack.close()
        self.key, self.mesh = None, None


@pytest.fixture(scope="module")
def meshes(tmp_path_factory):
    shared = SharedMeshes(tmp_path_factory)
    yield shared
    shared.close()


@pytest.mark.processes
@needs_hey
@pytest.mark.parametrize("name", _order())
def test_each_scenario_passes_its_own_expectation(meshes, name):
    scenario = SCENARIOS[name]
    mesh = meshes.for_scenario(name)
    m = measure_local(mesh, scenario)
    v = verdict(scenario, m)
    table = render(scenario, m, v)
    print(f"\n== demo {name} (mesh shared by the scenarios of the same faults)\n{table}")
    assert v.passed, table
    restarted = {pod: s.restarts for pod, s in mesh.services.items() if s.restarts}
    assert scenario.kill or not restarted, f"{name}: a scenario restarted {restarted}"
