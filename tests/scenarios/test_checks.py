"""The verdicts: each scenario's expectation over measurements, broken ones included."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scenarios.catalogue import catalogue, verdict
from scenarios.checks import Check, Verdict
from scenarios.measurement import Measurement
from tests.support import ROOT

SCENARIOS = catalogue(ROOT)
LATENCY = {"min": 0.01, "p50": 0.05, "p99": 0.2, "max": 0.3}


def measured(**fields) -> Measurement:
    """A local measurement of 400 requests, all 200, 40 from v2, nothing flagged: then ``fields``."""
    base = Measurement(
        where="local",
        requests=400,
        answered=400,
        seconds=4.0,
        statuses={200: 400},
        latency=LATENCY,
        versions={"v1": 360, "v2": 40},
        sidecar_calls=400,
        sidecar_flags={"-": 400},
        flag_ms={"-": {"min": 2, "max": 90}},
        attempts={1: 400},
        ingress_flags={"-": 400},
        replicas={"calculator-v1-0": {200: 180}, "calculator-v1-1": {200: 180}, "calculator-v2-0": {200: 40}},
        envoy={},
        ejections={"gateway-0-sidecar": 0, "gateway-1-sidecar": 0},
    )
    return replace(base, **fields)


def failed_checks(name: str, m: Measurement) -> list[str]:
    return [c.expectation for c in verdict(SCENARIOS[name], m).checks if c.passed is False]





# -- verdicts: pure, on broken measurements ---------------------------------------------------------


def test_a_healthy_base_passes_and_exits_0():
    v = verdict(SCENARIOS["base"], measured())
    assert v.passed and v.exit_status == 0
    assert [c.mark for c in v.checks] == ["PASS", "PASS", "PASS"]


@pytest.mark.parametrize(
    "broken, failing",
    [
        (dict(statuses={200: 399, 503: 1}), "every request answered 200"),
        (dict(answered=399, statuses={200: 399}), "every request answered 200"),  # one without an answer
        (dict(versions={"v1": 400}), "v2's share consistent with 10%"),
        (dict(versions={"v1": 200, "v2": 200}), "v2's share consistent with 10%"),
        (dict(versions={}), "v2's share consistent with 10%"),  # nothing measured is no share
        (dict(sidecar_flags={"-": 399, "URX": 1}), "no Envoy response flag"),
    ],
)
def test_a_broken_base_fails_and_exits_1(broken, failing):
    v = verdict(SCENARIOS["base"], measured(**broken))
    assert not v.passed and v.exit_status == 1
    assert any(c.expectation.startswith(failing) for c in v.checks if c.passed is False)


def test_retries_pass_only_when_the_replica_failed_and_the_clients_did_not_see_it():
    hidden = measured(
        statuses={200: 600}, requests=600, answered=600,
        replicas={"calculator-v1-0": {200: 120, 503: 150}},
        envoy={"v1.retry.upstream_rq_503": 150},
    )
    assert failed_checks("retries", hidden) == []
    # A replica that did not fail shows nothing about retries.
    assert failed_checks("retries", replace(hidden, replicas={"calculator-v1-0": {200: 270}}, envoy={})) == [
        "calculator-v1-0 failed (its own 503) for >= 10% of the requests",
        "clients saw < 5% of calculator-v1-0's 503s (the retries hid the rest)",
    ]
    seen = replace(hidden, statuses={200: 590, 503: 10}, envoy={"v1.retry.upstream_rq_503": 140})
    assert failed_checks("retries", seen) == [
        "clients saw < 5% of calculator-v1-0's 503s (the retries hid the rest)",
        "clients' success rate >= 99.0%",
    ]
    # The sidecars' count and the replica's disagree: one of them is wrong.
    assert failed_checks("retries", replace(hidden, envoy={"v1.retry.upstream_rq_503": 149})) == [
        "each 503 of calculator-v1-0 retried by a sidecar or seen by a client"
    ]


def test_no_retries_passes_only_when_each_failure_reached_a_client():
    lesson = measured(
        statuses={200: 450, 503: 150}, requests=600, answered=600,
        replicas={"calculator-v1-0": {200: 120, 503: 150}}, envoy={"v1.upstream_rq_retry": 0},
    )
    assert failed_checks("no-retries", lesson) == []
    assert failed_checks("no-retries", replace(lesson, statuses={200: 460, 503: 140})) == [
        "every 503 of calculator-v1-0 reached a client"
    ]
    assert failed_checks("no-retries", replace(lesson, envoy={"v1.upstream_rq_retry": 3})) == ["no request retried"]


def test_outlier_detection_fails_when_a_sidecar_never_ejected():
    ejected = measured(replicas={"calculator-v1-0": {503: 6}}, ejections={"gateway-0-sidecar": 1, "gateway-1-sidecar": 1})
    assert failed_checks("outlier-detection", ejected) == []
    once = replace(ejected, ejections={"gateway-0-sidecar": 1, "gateway-1-sidecar": 0},
                   replicas={"calculator-v1-0": {503: 90}})
    assert failed_checks("outlier-detection", once) == [
        "calculator-v1-0 ejected by each gateway sidecar",
        "calculator-v1-0 got <= 5% of the requests (without ejection: about 45%)",
    ]


def test_circuit_breaking_fails_when_an_overflow_waited_or_reached_the_app():
    good = measured(
        requests=96, answered=96, statuses={200: 20, 503: 76}, sidecar_flags={"-": 20, "UO": 76},
        flag_ms={"-": {"min": 500, "max": 1010}, "UO": {"min": 0, "max": 9}},
        replicas={"calculator-v2-0": {200: 20}}, envoy={"v2.upstream_rq_retry": 0},
    )
    assert failed_checks("circuit-breaker", good) == []
    slow = replace(good, flag_ms={"UO": {"min": 0, "max": 700}})
    assert failed_checks("circuit-breaker", slow) == ["an overflow fails fast (< 0.5 s at the sidecar)"]
    leaked = replace(good, replicas={"calculator-v2-0": {200: 20, 503: 1}})
    assert failed_checks("circuit-breaker", leaked) == [
        "the calculators answered only the 200s (an overflow never reaches the app)"
    ]


def test_timeout_fails_when_the_answers_come_late_or_without_the_retries():
    good = measured(requests=8, answered=8, statuses={504: 8}, latency={"min": 3.05, "p50": 3.1, "p99": 3.2, "max": 3.2},
                    sidecar_flags={"UT": 8}, attempts={3: 8})
    assert failed_checks("timeout", good) == []
    late = replace(good, latency={"min": 3.05, "p50": 3.1, "p99": 4.0, "max": 4.0}, attempts={1: 8})
    assert failed_checks("timeout", late) == [
        "every answer after 3 s and before 3.5 s",
        "every call made 3 attempts (perTryTimeout 1 s x 3 within the 3 s budget)",
    ]


def test_fault_abort_and_mirror_and_kill_on_broken_inputs():
    # No abort at all: the share fails (the FI check holds vacuously, 0 flagged for 0 answered 503).
    assert failed_checks("fault-abort", measured(statuses={200: 400}, replicas={"calculator-v1-0": {200: 400}})) == [
        "503s consistent with 50% (99.9%: 167-233 of 400)"
    ]
    assert failed_checks("mirror", measured(versions={"v1": 400}, mirrored={"v1": 400, "v2": 398})) == [
        "v2 answered a copy of every request v1 answered"
    ]
    never = measured(killed={"pod": "calculator-v1-0", "pid": 1, "at": 1.0, "back_after": None}, envoy={"v1.upstream_rq_retry": 4})
    assert failed_checks("kill-replica", never) == ["the killed replica restarted and ready again within 30 s"]
    assert failed_checks("kill-replica", measured(envoy={"v1.upstream_rq_retry": 4})) == [
        "the killed replica restarted and ready again within 30 s"
    ]


def test_checks_not_measured_on_kind_neither_pass_nor_fail():
    kind = measured(where="kind", replicas=None, envoy=None, ejections=None, attempts=None)
    v = verdict(SCENARIOS["no-retries"], kind)
    assert [c.passed for c in v.checks] == [None, None, None]
    assert not v.passed and v.exit_status == 1  # nothing measured is no verdict
    v = verdict(SCENARIOS["fault-abort"], replace(kind, statuses={200: 200, 503: 200}, sidecar_flags={"-": 200, "FI": 200}))
    assert [c.mark for c in v.checks] == ["PASS", "PASS", "n/a"] and v.passed



def test_the_verdict_needs_every_measured_check():
    assert Verdict([Check("a", "", True), Check("b", "", None)]).passed
    assert not Verdict([Check("a", "", True), Check("b", "", False)]).passed
    assert not Verdict([]).passed
