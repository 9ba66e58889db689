"""Outlier detection: a replica that answers only 503 is ejected by each sidecar and then gets
no traffic, for the DestinationRule's baseEjectionTime (30 s)."""

import pytest

from localmesh.processes import wait_until
from tests.localmesh.e2e.support import (
    SIDECARS,
    calcular_requests,
    cluster_stat,
    host_of,
    load,
    sidecar_entries,
)
from tests.support import running_mesh, statuses

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def broken_mesh(tmp_path_factory):
    broken = {"calculator-v1-0": {"FAULT_FAILURE_RATE": "1.0"}}
    with running_mesh(tmp_path_factory.mktemp("broken-mesh"), pod_env=broken) as mesh:
        yield mesh


def ejections(mesh, name: str) -> dict[str, int]:
    return {sidecar: cluster_stat(mesh, "v1", f"outlier_detection.{name}", (sidecar,)) for sidecar in SIDECARS}


def test_a_failing_replica_is_ejected_and_then_gets_no_traffic(broken_mesh):
    mesh = broken_mesh
    broken = mesh.services["calculator-v1-0"]
    answers = []

    def ejected_by_both_sidecars():
        # Rounds of 20 requests until each sidecar has seen 3 consecutive 503s from it.
        answers.extend(load(mesh, 20))
        return all(count >= 1 for count in ejections(mesh, "ejections_enforced_total").values())

    wait_until(ejected_by_both_sidecars, 20, interval=0, what="calculator-v1-0 ejected by both sidecars")
    enforced = ejections(mesh, "ejections_enforced_total")
    # Ejected as a gateway error (its 503s), the only kind the base DestinationRule counts.
    assert ejections(mesh, "ejections_enforced_consecutive_gateway_failure") == enforced
    assert ejections(mesh, "ejections_active") == {sidecar: 1 for sidecar in SIDECARS}
    answered_before = calcular_requests(broken)
    # The window: 200 requests, a few seconds, well within the 30 s ejection.
    window = load(mesh, 200)
    answered_after = calcular_requests(broken)

    print(
        f"outlier: ejected after {len(answers)} requests, enforced {enforced}; calculator-v1-0 answered "
        f"{sum(answered_before.values())} (all 503) before, {sum((answered_after - answered_before).values())} "
        f"in a window of {len(window)}"
    )
    assert answered_after == answered_before
    assert answered_before[503] >= 3 and set(answered_before) == {503}
    assert ejections(mesh, "ejections_active") == {sidecar: 1 for sidecar in SIDECARS}
    # The route's retries hid its 503s before the ejection; nobody saw a failure.
    assert statuses(answers + window) == {200: len(answers) + len(window)}
    ids = [a.trace_id for a in window]
    wait_until(lambda: len(sidecar_entries(mesh, ids)) == len(ids), 5, what="the window in the access logs")
    hosts = {entry["upstream_host"] for entry in sidecar_entries(mesh, ids).values()}
    assert host_of(broken) not in hosts
    assert host_of(mesh.services["calculator-v1-1"]) in hosts
