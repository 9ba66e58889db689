"""Fault injection by the gateway's sidecars: the virtual-service-calculator-fault-abort and virtual-service-calculator-fault-delay scenarios.

Both act on half of the requests of the split route (``percentage: 50``); the
sidecars' access logs flag each touched request (FI, DI) and their fault
filter counts them (http.sidecar_outbound.fault.*).
"""

import pytest

from localmesh.observe import ENVOY_TIMER_SLACK_MS
from localmesh.processes import wait_until
from tests.localmesh.e2e.support import (
    assert_share,
    calcular_requests_of,
    load,
    policy,
    policy_of,
    sidecar_entries,
    stat,
)
from tests.support import statuses

pytestmark = pytest.mark.processes

ABORTS = "http.sidecar_outbound.fault.aborts_injected"
DELAYS = "http.sidecar_outbound.fault.delays_injected"
DELAY = policy_of("virtual-service-calculator-fault-delay").split
ABORT = policy_of("virtual-service-calculator-fault-abort").split
DELAY_SECONDS = DELAY.delay_seconds


def calculators_reached(mesh) -> int:
    return sum(calcular_requests_of(mesh, "calculator-v1").values()) + sum(
        calcular_requests_of(mesh, "calculator-v2").values()
    )


def test_fault_abort_answers_half_of_the_requests_with_503(mesh):
    n = 600  # 99.9% interval of a 50% share: 260 to 340
    with policy(mesh, "virtual-service-calculator-fault-abort"):
        aborts_before, reached_before = stat(mesh, ABORTS), calculators_reached(mesh)
        answers = load(mesh, n)
        aborts, reached = stat(mesh, ABORTS) - aborts_before, calculators_reached(mesh) - reached_before

    counts = statuses(answers)
    assert set(counts) <= {200, 503}, counts
    print(f"virtual-service-calculator-fault-abort: {counts[503]} of {n} aborted; aborts_injected +{aborts}")
    assert_share(counts[ABORT.abort_status], n, ABORT.abort_share, "aborted requests")
    # The sidecar answered them itself: the gateway passes its 503 on, and no calculator saw them.
    for answer in answers:
        if answer.status == 503:
            assert answer.body["estado_upstream"] == 503
            assert answer.body["detalle"] == "fault filter abort"
    assert aborts == counts[503]
    assert reached == counts[200]
    ids = [a.trace_id for a in answers]
    wait_until(lambda: len(sidecar_entries(mesh, ids)) == n, 5, what="every request in the access logs")
    entries = sidecar_entries(mesh, ids)
    flagged = {t for t, e in entries.items() if "FI" in e["response_flags"].split(",")}
    assert flagged == {a.trace_id for a in answers if a.status == 503}


def test_fault_delay_holds_half_of_the_requests_for_two_seconds(mesh):
    n = 32
    with policy(mesh, "virtual-service-calculator-fault-delay"):
        delays_before = stat(mesh, DELAYS)
        # 8 in flight: even all on one gateway, none waits for one of its 8 threads.
        answers = load(mesh, n, concurrency=8)
        delays = stat(mesh, DELAYS) - delays_before

    assert statuses(answers) == {200: n}
    ids = [a.trace_id for a in answers]
    wait_until(lambda: len(sidecar_entries(mesh, ids)) == n, 5, what="every request in the access logs")
    entries = sidecar_entries(mesh, ids)
    delayed = [a for a in answers if "DI" in entries[a.trace_id]["response_flags"].split(",")]
    prompt = [a for a in answers if a not in delayed]
    print(
        f"virtual-service-calculator-fault-delay: {len(delayed)} of {n} delayed; delays_injected +{delays}; "
        f"delayed {min(a.seconds for a in delayed):.2f}-{max(a.seconds for a in delayed):.2f} s, "
        f"others at most {max(a.seconds for a in prompt):.2f} s"
    )
    assert delays == len(delayed)
    assert_share(len(delayed), n, DELAY.delay_share, "delayed requests")
    assert all(a.seconds >= DELAY_SECONDS for a in delayed)
    assert all(entries[a.trace_id]["duration"] >= DELAY_SECONDS * 1000 - ENVOY_TIMER_SLACK_MS for a in delayed)
    assert all(a.seconds < DELAY_SECONDS for a in prompt)
