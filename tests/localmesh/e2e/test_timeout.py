"""The route's timeout (3 s, over every attempt): a calculator that takes 4 s ends in the
sidecar's 504 (flag UT), which the gateway passes on, at 3 s, not 4 s."""

import pytest

from localmesh.processes import wait_until
from tests.localmesh.e2e.support import calculate, cluster_stat, scenario, sidecar_entries

pytestmark = pytest.mark.processes

ROUTE_TIMEOUT_SECONDS = 3.0  # istio/calculator-virtualservice.yaml
MARGIN_SECONDS = 0.5


def test_a_slow_calculator_call_ends_in_504_at_the_route_timeout(slow_mesh):
    mesh = slow_mesh
    # canary-100-0: every request to v1, which the slow mesh makes answer after 4 s.
    with scenario(mesh, "canary-100-0"):
        timeouts_before = cluster_stat(mesh, "v1", "upstream_rq_timeout")
        per_try_before = cluster_stat(mesh, "v1", "upstream_rq_per_try_timeout")
        answer = calculate(mesh)
        timeouts = cluster_stat(mesh, "v1", "upstream_rq_timeout") - timeouts_before
        per_try = cluster_stat(mesh, "v1", "upstream_rq_per_try_timeout") - per_try_before

    entry = wait_until(lambda: sidecar_entries(mesh, [answer.trace_id]).get(answer.trace_id), 5, what="access log")
    print(
        f"timeout: {answer.status} after {answer.seconds:.2f} s; flags {entry['response_flags']}, "
        f"{entry['upstream_attempts']} attempts; upstream_rq_timeout +{timeouts}, per_try_timeout +{per_try}"
    )
    assert answer.status == 504
    assert answer.body["estado_upstream"] == 504
    assert ROUTE_TIMEOUT_SECONDS <= answer.seconds < ROUTE_TIMEOUT_SECONDS + MARGIN_SECONDS
    assert "UT" in entry["response_flags"].split(",")
    assert entry["response_code"] == 504
    assert timeouts == 1
    # perTryTimeout 1 s: the first two attempts timed out and were retried, the third ran into the 3 s.
    assert per_try == 2
    assert entry["upstream_attempts"] == 3
