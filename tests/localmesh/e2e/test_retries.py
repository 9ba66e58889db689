"""Retries: calculator-v1-0 fails half of its requests (the retries scenario's fault, a 503 marked
``fallo_inyectado``); the route's retries (5xx, 2 attempts, to another host) hide it from clients.

The base DestinationRule also ejects a host after 3 consecutive 5xx, which
the failing replica soon gives each sidecar: from then on (30 s) the sidecar
sends it nothing, so only its first answers show retries, or, with retries
off, reach the clients. Each test therefore starts its own mesh, with fresh
outlier state, and counts against what the replica itself answered.
"""

import pytest

from tests.localmesh.e2e.support import assert_share, calcular_requests, cluster_stat, load, with_faults
from tests.support import running_mesh, statuses

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def failing_mesh(tmp_path_factory):
    with running_mesh(tmp_path_factory.mktemp("failing-mesh")) as mesh:
        yield with_faults(mesh, "retries")


@pytest.fixture(scope="module")
def failing_mesh_without_retries(tmp_path_factory):
    with running_mesh(tmp_path_factory.mktemp("no-retries"), policy=("virtual-service-calculator-no-retries",)) as mesh:
        yield with_faults(mesh, "retries")


def retry_stats(mesh) -> dict[str, int]:
    names = (
        "upstream_rq_retry",
        "upstream_rq_retry_success",
        "upstream_rq_retry_limit_exceeded",
        "retry.upstream_rq_503",  # attempts retried because they were answered 503
        "outlier_detection.ejections_enforced_total",
    )
    return {name: cluster_stat(mesh, "v1", name) for name in names}


def test_retries_hide_a_replica_that_fails_half_its_requests(failing_mesh):
    n = 1000
    failing = failing_mesh.services["calculator-v1-0"]
    before, replica_before = retry_stats(failing_mesh), calcular_requests(failing)
    answers = load(failing_mesh, n)
    after, replica_after = retry_stats(failing_mesh), calcular_requests(failing)
    retries = {name: after[name] - before[name] for name in after}
    failures = replica_after[503] - replica_before[503]
    served = replica_after[200] - replica_before[200]

    counts = statuses(answers)
    print(
        f"retries: {counts[200]} of {n} clients succeeded; calculator-v1-0 answered {served} x 200 "
        f"and {failures} x 503; sidecars: {retries}"
    )
    assert counts[200] >= 0.999 * n
    assert failures > 0
    assert retries["upstream_rq_retry"] > 0
    assert retries["upstream_rq_retry_success"] > 0
    # Every 503 of the replica was retried, except the last attempt of a request
    # whose retries ran out, which the client then saw.
    assert failures == retries["retry.upstream_rq_503"] + counts[503]


def test_without_retries_the_failures_reach_the_clients(failing_mesh_without_retries):
    mesh = failing_mesh_without_retries
    n = 300
    failing = mesh.services["calculator-v1-0"]
    before, replica_before = retry_stats(mesh), calcular_requests(failing)
    answers = load(mesh, n)
    after, replica_after = retry_stats(mesh), calcular_requests(failing)
    failures = replica_after[503] - replica_before[503]
    served = replica_after[200] - replica_before[200]

    counts = statuses(answers)
    failed = [a for a in answers if a.status != 200]
    print(
        f"virtual-service-calculator-no-retries: {len(failed)} of {n} clients failed; calculator-v1-0 answered {served} x 200 "
        f"and {failures} x 503 ({failures / (served + failures):.0%} of its answers)"
    )
    assert set(counts) == {200, 503}
    # Each of the replica's 503s reached a client, as the replica's own answer.
    assert len(failed) == failures > 0
    for answer in failed:
        assert answer.headers["x-calculator-fault"] == "failure"
        assert answer.headers["x-calculator-version"] == "v1"
        assert answer.body["estado_upstream"] == 503
    assert after["upstream_rq_retry"] == before["upstream_rq_retry"]
    # Half of what the replica answered, as its knob says (it answered few: see the docstring).
    assert_share(failures, served + failures, 0.5, "calculator-v1-0's 503s")
    print(f"virtual-service-calculator-no-retries: ejections {after['outlier_detection.ejections_enforced_total']}")
