"""Circuit breaking (destination-rule-calculator-circuit-breaker): past one request in flight per sidecar and subset,
a request fails at once with the sidecar's 503 and ``x-envoy-overloaded``, never reaching the app.

The requests carry ``x-canary: always``, so all go to v2, which the slow mesh
makes answer after 0.5 s: the admitted ones stay in flight while the others arrive.
"""

import threading

import pytest

from scenarios.catalogue import SLOW_V2_SECONDS
from tests.localmesh.e2e.support import SIDECARS, calcular_requests, calculate, cluster_stat, policy
from tests.support import statuses

pytestmark = pytest.mark.processes

V2_DELAY_SECONDS = SLOW_V2_SECONDS  # the circuit-breaker scenario's fault, which conftest.slow_mesh sets


def burst(mesh, count: int, headers: dict) -> list:
    """``count`` requests released together from as many threads."""
    start = threading.Barrier(count)
    answers = [None] * count

    def send(index):
        start.wait(10)
        answers[index] = calculate(mesh, headers)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(answers), "a request of the burst did not end"
    return answers


def test_concurrency_past_the_connection_pool_fails_fast_with_503(slow_mesh):
    mesh = slow_mesh
    v2 = mesh.services["calculator-v2-0"]
    # Every request reaches a sidecar at once: below the gateways' 2 x 8 threads, and within the
    # 8 requests the ingress queues for a new connection to them (istio/gateway-destinationrule.yaml:
    # http1MaxPendingRequests; more, on a cold pool, overflow at the ingress instead).
    n = 8
    with policy(mesh, "destination-rule-calculator-circuit-breaker"):
        overflow_before = cluster_stat(mesh, "v2", "upstream_rq_pending_overflow")
        retries_before = cluster_stat(mesh, "v2", "upstream_rq_retry")
        app_before = calcular_requests(v2)
        answers = burst(mesh, n, {"x-canary": "always"})
        overflow = cluster_stat(mesh, "v2", "upstream_rq_pending_overflow") - overflow_before
        retries = cluster_stat(mesh, "v2", "upstream_rq_retry") - retries_before
        app = calcular_requests(v2) - app_before

    counts = statuses(answers)
    overloaded = [a for a in answers if a.status == 503]
    served = [a for a in answers if a.status == 200]
    print(
        f"circuit breaking: {len(overloaded)} of {n} overflowed (upstream_rq_pending_overflow +{overflow}) "
        f"in at most {max(a.seconds for a in overloaded):.2f} s; {len(served)} served in "
        f"{min(a.seconds for a in served):.2f}-{max(a.seconds for a in served):.2f} s; v2 answered {dict(app)}"
    )
    assert set(counts) == {200, 503}
    # One request in flight per sidecar: at least one is served by each, the rest overflow.
    assert len(served) >= len(SIDECARS) and len(overloaded) >= n - 2 * len(SIDECARS)
    for answer in overloaded:
        assert answer.headers["x-envoy-overloaded"] == "true"
        assert answer.body["estado_upstream"] == 503
        assert answer.seconds < V2_DELAY_SECONDS  # never waited for the calculator
    assert all(a.seconds >= V2_DELAY_SECONDS for a in served)
    assert overflow == len(overloaded)
    assert retries == 0  # an overflow is never retried
    # The app answered every request it got, and only those the clients saw served.
    assert app == {200: len(served)}
