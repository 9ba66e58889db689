"""The meshes several test modules share; a module that needs its own starts it itself."""

import pytest

from tests.localmesh.e2e.support import with_faults
from tests.support import running_mesh


@pytest.fixture(scope="session")
def mesh(tmp_path_factory):
    """The manifests as they are, no fault set: policies are switched on it per test."""
    with running_mesh(tmp_path_factory.mktemp("mesh")) as running:
        yield running


@pytest.fixture(scope="session")
def slow_mesh(tmp_path_factory):
    """Calculators that answer late, set at run time with the catalogue's faults: v1 as the timeout
    scenario slows it (past the route's timeout), v2 as the circuit-breaker scenario does (within the
    per-try timeout, so that its requests stay in flight and fill a connection pool)."""
    with running_mesh(tmp_path_factory.mktemp("slow-mesh")) as running:
        yield with_faults(running, "timeout", "circuit-breaker")
