"""The meshes several test modules share; a module that needs its own starts it itself."""

import pytest

from tests.support import running_mesh


@pytest.fixture(scope="session")
def mesh(tmp_path_factory):
    """The manifests as they are, no fault knob set: scenarios are switched on it per test."""
    with running_mesh(tmp_path_factory.mktemp("mesh")) as running:
        yield running


@pytest.fixture(scope="session")
def slow_mesh(tmp_path_factory):
    """Calculators that answer late: v1 after 4 s, past the routes' 3 s timeout; v2 after 0.5 s,
    within the 1 s per-try timeout, so that its requests stay in flight and fill a connection pool."""
    slow = {
        "calculator-v1-0": {"FAULT_DELAY_SECONDS": "4"},
        "calculator-v1-1": {"FAULT_DELAY_SECONDS": "4"},
        "calculator-v2-0": {"FAULT_DELAY_SECONDS": "0.5"},
    }
    with running_mesh(tmp_path_factory.mktemp("slow-mesh"), pod_env=slow) as running:
        yield running
