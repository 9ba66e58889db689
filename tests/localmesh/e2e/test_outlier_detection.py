"""Outlier detection: a replica that answers only 503 is ejected by each sidecar and then gets
no traffic while its ejection lasts (the DestinationRule's baseEjectionTime, 5 s the first time)."""

import pytest

from localmesh.processes import wait_until
from tests.localmesh.e2e.support import (
    SIDECARS,
    calcular_requests,
    cluster_stat,
    host_of,
    load,
    sidecar_entries,
    with_faults,
)
from tests.support import running_mesh, statuses

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def broken_mesh(tmp_path_factory):
    # The outlier-detection scenario's fault: calculator-v1-0 answers 503 to everything.
    with running_mesh(tmp_path_factory.mktemp("broken-mesh")) as mesh:
        yield with_faults(mesh, "outlier-detection")


def ejections(mesh, name: str) -> dict[str, int]:
    return {sidecar: cluster_stat(mesh, "v1", f"outlier_detection.{name}", (sidecar,)) for sidecar in SIDECARS}


def test_a_failing_replica_is_ejected_and_then_gets_no_traffic(broken_mesh):
    mesh = broken_mesh
    broken = mesh.services["calculator-v1-0"]
    answers = []
    all_ejected = {sidecar: 1 for sidecar in SIDECARS}

    def ejected_by_both_sidecars():
        # Rounds of 20 requests until each sidecar has seen 3 consecutive 503s from it, and ejects it now.
        answers.extend(load(mesh, 20))
        return ejections(mesh, "ejections_active") == all_ejected

    # A window of requests counts only if the replica stayed ejected by both sidecars throughout:
    # ejected at its start and end, and no ejection enforced in between (an ejection that ended
    # mid-window would let requests through, then eject it again). The ejection is short (5 s):
    # a window that straddles its end is drawn again.
    for _attempt in range(5):
        wait_until(ejected_by_both_sidecars, 20, interval=0, what="calculator-v1-0 ejected by both sidecars")
        enforced = ejections(mesh, "ejections_enforced_total")
        answered_before = calcular_requests(broken)
        window = load(mesh, 40)
        answered_after = calcular_requests(broken)
        if ejections(mesh, "ejections_active") == all_ejected and ejections(mesh, "ejections_enforced_total") == enforced:
            break
        answers.extend(window)
    else:
        pytest.fail("no window of 40 requests fell inside an ejection by both sidecars in 5 tries")
    # Ejected as a gateway error (its 503s), the only kind the base DestinationRule counts.
    assert ejections(mesh, "ejections_enforced_consecutive_gateway_failure") == enforced
    print(
        f"outlier: ejected after {len(answers)} requests, enforced {enforced}; calculator-v1-0 answered "
        f"{sum(answered_before.values())} (all 503) before, {sum((answered_after - answered_before).values())} "
        f"in a window of {len(window)}"
    )
    assert answered_after == answered_before
    assert answered_before[503] >= 3 and set(answered_before) == {503}
    # The route's retries hid its 503s before the ejection; nobody saw a failure.
    assert statuses(answers + window) == {200: len(answers) + len(window)}
    ids = [a.trace_id for a in window]
    wait_until(lambda: len(sidecar_entries(mesh, ids)) == len(ids), 5, what="the window in the access logs")
    hosts = {entry["upstream_host"] for entry in sidecar_entries(mesh, ids).values()}
    assert host_of(broken) not in hosts
    assert host_of(mesh.services["calculator-v1-1"]) in hosts
