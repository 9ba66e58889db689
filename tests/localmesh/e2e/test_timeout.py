"""The route's timeout (3 s, over every attempt): a calculator that takes 4 s ends in the
sidecar's 504 (flag UT), which the gateway passes on, at 3 s, not 4 s."""

import secrets

import pytest

from localmesh.observe import ENVOY_TIMER_SLACK_MS
from localmesh.processes import wait_until
from tests.localmesh.e2e.support import calculate, cluster_stat, policy, policy_of, sidecar_entries
from tests.reliability.support import read_results
from tests.support import post_json

pytestmark = pytest.mark.processes

ROUTE_TIMEOUT_SECONDS = policy_of("virtual-service-calculator-100-0").split.timeout_seconds
MARGIN_SECONDS = 0.5


def test_a_slow_calculator_call_ends_in_504_at_the_route_timeout(slow_mesh):
    mesh = slow_mesh
    # virtual-service-calculator-100-0: every request to v1, which the slow mesh makes answer after 4 s.
    with policy(mesh, "virtual-service-calculator-100-0"):
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
    # An Envoy timer: it may fire ENVOY_TIMER_SLACK_MS early, as the demo's verdict allows too.
    assert ROUTE_TIMEOUT_SECONDS - ENVOY_TIMER_SLACK_MS / 1000 <= answer.seconds < ROUTE_TIMEOUT_SECONDS + MARGIN_SECONDS
    assert "UT" in entry["response_flags"].split(",")
    assert entry["response_code"] == 504
    assert timeouts == 1
    # perTryTimeout 1 s: the first two attempts timed out and were retried, the third ran into the 3 s.
    assert per_try == 2
    assert entry["upstream_attempts"] == 3


def test_after_a_504_the_calculation_may_still_be_recorded(slow_mesh):
    """At-least-once, as the README says: a route timeout ends the client's wait, not the calculator's
    work. Every attempt the sidecar made (the first, and the retries after each per-try timeout)
    still finishes on its calculator and writes its line, after the client got 504."""
    mesh = slow_mesh
    request_id = 900_000_000 + secrets.randbelow(10**6)
    trace_id = secrets.token_hex(16)
    with policy(mesh, "virtual-service-calculator-100-0"):
        status, _, _ = post_json(
            f"{mesh.ingress_url}/calcular",
            {"operacion": "sumar", "numero1": request_id, "numero2": 0},
            {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
        )
        entry = wait_until(lambda: sidecar_entries(mesh, [trace_id]).get(trace_id), 5, what="access log")
        assert status == 504
        assert read_results(mesh.options.run_dir / "data").counts[request_id] == 0  # none yet at the 504
        # Each attempt sleeps 4 s (the slow mesh), then writes: all of them within 4 s of the 504.
        wait_until(
            lambda: read_results(mesh.options.run_dir / "data").counts[request_id] >= entry["upstream_attempts"],
            10,
            what="the lines of the timed-out attempts",
        )
    counts = read_results(mesh.options.run_dir / "data").counts[request_id]
    print(f"504 after {entry['upstream_attempts']} attempts; lines written afterwards: {counts}")
    assert counts == entry["upstream_attempts"] == 3
