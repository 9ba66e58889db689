"""Mirroring (virtual-service-calculator-mirror-v2): v2 gets a copy of every request, the clients only v1's answers."""

import pytest

from localmesh.processes import wait_until
from tests.localmesh.e2e.support import calcular_requests_of, cluster_stat, load, policy, versions
from tests.support import statuses

pytestmark = pytest.mark.processes


def test_v2_receives_a_copy_of_every_request_and_clients_see_only_v1(mesh):
    n = 200
    with policy(mesh, "virtual-service-calculator-mirror-v2"):
        v2_before = calcular_requests_of(mesh, "calculator-v2")[200]
        v2_cluster_before = cluster_stat(mesh, "v2", "upstream_rq_total")
        answers = load(mesh, n)

        def copies_answered():
            return calcular_requests_of(mesh, "calculator-v2")[200] - v2_before

        # The copies are fire and forget: the last ones may land after their originals' answers.
        wait_until(lambda: copies_answered() >= n, 10, what=f"{n} mirrored requests answered by v2")
        mirrored = copies_answered()
        v2_cluster = cluster_stat(mesh, "v2", "upstream_rq_total") - v2_cluster_before

    print(f"mirror: clients saw {dict(versions(answers))}; v2 answered {mirrored} copies")
    assert statuses(answers) == {200: n}
    assert versions(answers) == {"v1": n}
    assert mirrored == n
    assert v2_cluster == n
