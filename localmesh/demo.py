"""The scenario runner: each fault-tolerance mechanism of the document, applied, loaded and judged.

``python -m localmesh demo NAME`` (``make demo NAME=...``) starts the local mesh
with the scenario's Istio files and fault knobs, sends bounded load through the
ingress (``localmesh.load``), measures what the clients, the Envoys and the
replicas saw, and prints a verdict table. The exit status is 0 exactly when
every check of the scenario's expectation held.

The catalogue (``SCENARIOS``), the measurement (``Measurement``, plain data)
and the verdicts (``expectation`` functions, ``verdict``, ``render``) are pure:
the tests feed them broken measurements. Running things is in ``measure_local``
and, for a kind cluster, ``localmesh.demo_kind``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, TextIO

from localmesh.load import LoadResult, LoadSpec, percentile, run_load
from localmesh.observe import (
    ENVOY_TIMER_SLACK_MS,
    AccessLogTail,
    access_log_path,
    binomial_interval,
    calcular_requests,
    flags_of,
    subset_cluster,
    subset_of,
    wilson_interval,
)
from localmesh.processes import wait_until

SIDECARS = ("gateway-0-sidecar", "gateway-1-sidecar")
CALCULATOR_PODS = ("calculator-v1-0", "calculator-v1-1", "calculator-v2-0")
SUBSETS = ("v1", "v2")
CLUSTER_STATS = (
    "upstream_rq_total",
    "upstream_rq_retry",
    "upstream_rq_retry_success",
    "upstream_rq_retry_limit_exceeded",
    "retry.upstream_rq_503",
    "upstream_rq_pending_overflow",
    "upstream_rq_timeout",
    "upstream_rq_per_try_timeout",
    "outlier_detection.ejections_enforced_total",
)
FAULT_STATS = ("aborts_injected", "delays_injected")
FAULT_PREFIX = "http.sidecar_outbound.fault."

# The policy the expectations are written against (istio/): each number's file.
ROUTE_TIMEOUT_SECONDS = 3.0  # calculator-virtualservice.yaml: timeout
ATTEMPTS = 3  # calculator-virtualservice.yaml: retries.attempts 2, plus the first
FAULT_DELAY_SECONDS = 2.0  # scenarios/fault-delay.yaml: fixedDelay
SLOW_V2_SECONDS = 0.5  # the circuit-breaker scenario's FAULT_DELAY_SECONDS on v2

FAILING = {"calculator-v1-0": {"FAULT_FAILURE_RATE": "0.5"}}
BROKEN = {"calculator-v1-0": {"FAULT_FAILURE_RATE": "1.0"}}
# v1 past the route timeout (timeout), v2 slow enough to keep requests in flight (circuit-breaker).
SLOW = {
    "calculator-v1-0": {"FAULT_DELAY_SECONDS": "4"},
    "calculator-v1-1": {"FAULT_DELAY_SECONDS": "4"},
    "calculator-v2-0": {"FAULT_DELAY_SECONDS": str(SLOW_V2_SECONDS)},
}
CANARY = {"x-canary": "always"}
# Every load keeps at most 8 requests in flight: istio/gateway-destinationrule.yaml lets the
# ingress queue 8 requests for a connection to the gateways (http1MaxPendingRequests), and
# a burst of more on a cold connection pool would overflow there (503 UO at the ingress).


# -- what a run measured ---------------------------------------------------------------------------


@dataclass
class Measurement:
    """What one scenario's load gave, as plain data (``--json`` prints it). None: not measured."""

    where: str  # "local" or "kind"
    requests: int  # sent
    answered: int  # with an HTTP answer
    seconds: float
    statuses: dict[int, int]
    latency: dict[str, float | None]  # client seconds: min, p50, p99, max
    # From the gateway sidecars' access logs: their calls to the calculator.
    versions: dict[str, int] | None = None  # answers 200 by subset
    sidecar_calls: int | None = None
    sidecar_flags: dict[str, int] | None = None
    flag_ms: dict[str, dict[str, int]] | None = None  # per flag ("-": none): min and max duration
    attempts: dict[int, int] | None = None  # upstream attempts per call
    ingress_flags: dict[str, int] | None = None
    # The replicas' own /metrics: POST /calcular answered during the load, by status.
    replicas: dict[str, dict[int, int]] | None = None
    # The gateway sidecars' counters: "v1.upstream_rq_retry" summed over both, deltas.
    envoy: dict[str, int] | None = None
    ejections: dict[str, int] | None = None  # per sidecar: v1 ejections enforced during the load
    mirrored: dict[str, int] | None = None  # v1 and v2 answers, once the copies landed
    killed: dict | None = None  # pod, at (s), restarted, back_after (s)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def success(self) -> float:
        return self.ok / self.requests if self.requests else 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Measurement":
        data = dict(data)
        data["statuses"] = {int(k): v for k, v in data["statuses"].items()}
        if data.get("attempts") is not None:
            data["attempts"] = {int(k): v for k, v in data["attempts"].items()}
        if data.get("replicas") is not None:
            data["replicas"] = {p: {int(k): v for k, v in c.items()} for p, c in data["replicas"].items()}
        return cls(**data)


@dataclass(frozen=True)
class Check:
    expectation: str
    observed: str
    passed: bool | None  # None: not measured here (on kind, the replicas' and Envoys' own counters)

    @property
    def mark(self) -> str:
        return {True: "PASS", False: "FAIL", None: "n/a"}[self.passed]


@dataclass(frozen=True)
class Verdict:
    checks: list[Check]

    @property
    def measured(self) -> list[Check]:
        return [c for c in self.checks if c.passed is not None]

    @property
    def passed(self) -> bool:
        """Every measured check held, and at least one was measured."""
        return bool(self.measured) and all(c.passed for c in self.measured)

    @property
    def exit_status(self) -> int:
        return 0 if self.passed else 1


# -- checks: pure functions of a measurement ---------------------------------------------------------


def _pct(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def all_status(m: Measurement, status: int) -> Check:
    return Check(
        f"every request answered {status}",
        f"{m.statuses.get(status, 0)} of {m.requests}" + _others(m, status),
        m.statuses == {status: m.requests},
    )


def _others(m: Measurement, status: int) -> str:
    others = {s: n for s, n in sorted(m.statuses.items()) if s != status}
    errors = m.requests - m.answered
    parts = [f"{n}x{s}" for s, n in others.items()] + ([f"{errors} without answer"] if errors else [])
    return f" ({', '.join(parts)})" if parts else ""


def success_at_least(m: Measurement, share: float) -> Check:
    return Check(
        f"clients' success rate >= {share:.1%}",
        f"{m.success:.2%} ({m.ok} of {m.requests})",
        m.success >= share,
    )


def version_share(m: Measurement, subset: str, share: float) -> Check:
    """The subset's share of the answers is one a split of ``share`` gives 99.9% of the time."""
    if m.versions is None:
        return Check(f"{subset} answers {share:.0%} of requests", "not measured", None)
    n = sum(m.versions.values())
    count = m.versions.get(subset, 0)
    if share in (0.0, 1.0):
        expected = round(share * n)
        return Check(f"{subset} answers {share:.0%} of requests", f"{count} of {n}", n > 0 and count == expected)
    low, high = binomial_interval(share, n)
    return Check(
        f"{subset}'s share consistent with {share:.0%} (99.9%: {low:.0f}-{high:.0f} of {n})",
        f"{count} ({_pct(count, n)})",
        n > 0 and low <= count <= high,
    )


def no_flags(m: Measurement) -> Check:
    if m.sidecar_flags is None or m.ingress_flags is None:
        return Check("no Envoy response flag", "not measured", None)
    flagged = {f: n for f, n in {**m.ingress_flags, **m.sidecar_flags}.items() if f != "-"}
    return Check(
        "no Envoy response flag at the ingress or the sidecars",
        ", ".join(f"{f} {n}" for f, n in flagged.items()) or "none",
        not flagged,
    )


def replica_answers(m: Measurement, pod: str) -> dict[int, int] | None:
    return None if m.replicas is None or pod not in m.replicas else m.replicas[pod]


def replica_failed(m: Measurement, pod: str, at_least: float) -> Check:
    counts = replica_answers(m, pod)
    expectation = f"{pod} failed (its own 503) for >= {at_least:.0%} of the requests"
    if counts is None:
        return Check(expectation, "not measured", None)
    failures = counts.get(503, 0)
    return Check(expectation, f"{failures} ({_pct(failures, m.requests)})", failures >= at_least * m.requests)


def failures_retried_or_seen(m: Measurement, pod: str) -> Check:
    counts, envoy = replica_answers(m, pod), m.envoy
    expectation = f"each 503 of {pod} retried by a sidecar or seen by a client"
    if counts is None or envoy is None:
        return Check(expectation, "not measured", None)
    failures, retried, seen = counts.get(503, 0), envoy.get("v1.retry.upstream_rq_503", 0), m.statuses.get(503, 0)
    return Check(expectation, f"{failures} = {retried} retried + {seen} seen", failures == retried + seen)


def failures_hidden(m: Measurement, pod: str, share: float) -> Check:
    counts = replica_answers(m, pod)
    expectation = f"clients saw < {1 - share:.0%} of {pod}'s 503s (the retries hid the rest)"
    if counts is None:
        return Check(expectation, "not measured", None)
    failures, seen = counts.get(503, 0), m.requests - m.ok
    return Check(expectation, f"{seen} of {failures}", failures > 0 and seen < (1 - share) * failures)


def failures_reached_clients(m: Measurement, pod: str) -> Check:
    counts = replica_answers(m, pod)
    expectation = f"every 503 of {pod} reached a client"
    if counts is None:
        return Check(expectation, "not measured", None)
    failures, seen = counts.get(503, 0), m.statuses.get(503, 0)
    return Check(expectation, f"{seen} seen of {failures}", failures == seen and set(m.statuses) <= {200, 503})


def envoy_counter(m: Measurement, name: str, expectation: str, test: Callable[[int], bool]) -> Check:
    if m.envoy is None:
        return Check(expectation, "not measured", None)
    value = m.envoy.get(name, 0)
    return Check(expectation, f"{name} +{value}", test(value))


def ejected_by_every_sidecar(m: Measurement) -> Check:
    expectation = "calculator-v1-0 ejected by each gateway sidecar"
    if m.ejections is None:
        return Check(expectation, "not measured", None)
    return Check(
        expectation,
        ", ".join(f"{s}: {n}" for s, n in m.ejections.items()),
        bool(m.ejections) and all(n >= 1 for n in m.ejections.values()),
    )


def replica_share_at_most(m: Measurement, pod: str, share: float, instead: str) -> Check:
    counts = replica_answers(m, pod)
    expectation = f"{pod} got <= {share:.0%} of the requests (without ejection: {instead})"
    if counts is None:
        return Check(expectation, "not measured", None)
    total = sum(counts.values())
    return Check(expectation, f"{total} ({_pct(total, m.requests)})", total <= share * m.requests)


def flag_count_is(m: Measurement, flag: str, status: int, what: str) -> Check:
    expectation = f"every {status} is {what} (flag {flag} at the sidecar)"
    if m.sidecar_flags is None:
        return Check(expectation, "not measured", None)
    flagged, seen = m.sidecar_flags.get(flag, 0), m.statuses.get(status, 0)
    return Check(expectation, f"{flagged} flagged {flag}, {seen} answered {status}", flagged == seen)


def flagged_duration(m: Measurement, flag: str, expectation: str, test: Callable[[int, int], bool]) -> Check:
    """``test(min_ms, max_ms)`` of the sidecar's durations of the calls flagged ``flag`` ("-": none)."""
    if m.flag_ms is None:
        return Check(expectation, "not measured", None)
    span = m.flag_ms.get(flag)
    if span is None:
        return Check(expectation, f"no call flagged {flag}", False)
    return Check(expectation, f"{span['min']}-{span['max']} ms", test(span["min"], span["max"]))


def flag_share(m: Measurement, flag: str, share: float, what: str) -> Check:
    if m.sidecar_flags is None or not m.sidecar_calls:
        return Check(f"{what}: {share:.0%} of calls", "not measured", None)
    n, count = m.sidecar_calls, m.sidecar_flags.get(flag, 0)
    low, high = binomial_interval(share, n)
    return Check(
        f"{what} (flag {flag}) consistent with {share:.0%} (99.9%: {low:.0f}-{high:.0f} of {n})",
        f"{count} ({_pct(count, n)})",
        low <= count <= high,
    )


def status_share(m: Measurement, status: int, share: float) -> Check:
    count = m.statuses.get(status, 0)
    low, high = binomial_interval(share, m.requests)
    return Check(
        f"{status}s consistent with {share:.0%} (99.9%: {low:.0f}-{high:.0f} of {m.requests})",
        f"{count} ({_pct(count, m.requests)})" + _others_than(m, {200, status}),
        low <= count <= high and set(m.statuses) <= {200, status} and m.answered == m.requests,
    )


def _others_than(m: Measurement, allowed: set[int]) -> str:
    others = {s: n for s, n in m.statuses.items() if s not in allowed}
    return f"; also {others}" if others else ""


def calculators_answered_only(m: Measurement, status: int, pods: tuple[str, ...], what: str) -> Check:
    expectation = f"the calculators answered only the {status}s ({what})"
    if m.replicas is None:
        return Check(expectation, "not measured", None)
    answered = Counter()
    for pod in pods:
        answered.update(m.replicas.get(pod, {}))
    seen = m.statuses.get(status, 0)
    return Check(expectation, f"{dict(answered) or 'nothing'} for {seen} x {status}", dict(answered) == {status: seen} or (seen == 0 and not answered))


def latency_between(m: Measurement, low: float, high: float) -> Check:
    """``low`` is an Envoy timer (a route timeout): it may fire ENVOY_TIMER_SLACK_MS early (seen: 2.99x s for 3 s)."""
    least, most = m.latency.get("min"), m.latency.get("max")
    return Check(
        f"every answer after {low:g} s and before {high:g} s",
        f"{least:.3f}-{most:.3f} s" if least is not None else "no answer",
        least is not None and low - ENVOY_TIMER_SLACK_MS / 1000 <= least and most < high,
    )


def latency_p99_at_least(m: Measurement, seconds: float) -> Check:
    p99 = m.latency.get("p99")
    return Check(f"clients' p99 >= {seconds:g} s", f"{p99:.2f} s" if p99 is not None else "-", p99 is not None and p99 >= seconds)


def every_call_attempted(m: Measurement, attempts: int) -> Check:
    expectation = f"every call made {attempts} attempts (perTryTimeout 1 s x {attempts} = the 3 s budget)"
    if m.attempts is None:
        return Check(expectation, "not measured", None)
    return Check(expectation, ", ".join(f"{n} with {a}" for a, n in sorted(m.attempts.items())), set(m.attempts) == {attempts})


def mirrored_every_request(m: Measurement) -> Check:
    expectation = "v2 answered a copy of every request v1 answered"
    if m.mirrored is None:
        return Check(expectation, "not measured", None)
    return Check(expectation, f"v1 {m.mirrored['v1']}, v2 {m.mirrored['v2']}", m.mirrored["v1"] == m.mirrored["v2"] > 0)


def came_back(m: Measurement, within: float) -> Check:
    expectation = f"the killed replica restarted and ready again within {within:g} s"
    if not m.killed:
        return Check(expectation, "no replica killed", False)
    back = m.killed.get("back_after")
    observed = f"{m.killed['pod']} killed at {m.killed['at']:.1f} s; " + (
        f"ready {back:.1f} s later" if back is not None else "not back"
    )
    return Check(expectation, observed, back is not None and back <= within)


# -- the catalogue --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str  # what it shows, one line
    lesson: str  # what to read in the table
    istio: str | None  # istio/scenarios/ files joined with "+"; None: istio/ as it is
    load: LoadSpec
    expect: Callable[[Measurement], list[Check]]
    pod_env: dict[str, dict[str, str]] = field(default_factory=dict)
    kill: str | None = None  # a pod SIGKILLed under load
    kill_at: float = 0.2  # share of the requests answered by then
    mirrored: bool = False  # wait for the mirrored copies before counting
    kind_limit: str | None = None  # why it cannot run on kind, if it cannot

    def files(self) -> list[str]:
        return [f"istio/scenarios/{part}.yaml" for part in (self.istio or "").split("+") if part]


ONE_POD_LIMIT = (
    "it sets a fault on one replica (calculator-v1-0); on Kubernetes an env var is set on a "
    "Deployment, so every v1 pod would fail and the expectation (one pod failing among healthy ones) "
    "would not be what runs: run it on the local mesh"
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "baseline",
            "The base policy, nothing failing: the reference for the others.",
            "Every request answered; one in ten from v2 (the base canary weights 90/10).",
            None,
            LoadSpec(400),
            lambda m: [all_status(m, 200), version_share(m, "v2", 0.10), no_flags(m)],
        ),
        Scenario(
            "canary-90-10",
            "Canary stage 90/10: the VirtualService's weights send one request in ten to v2.",
            "v2's share, and the interval: with a few hundred requests a 10% split is anything from ~6% to ~14%.",
            "canary-90-10",
            LoadSpec(600),
            lambda m: [all_status(m, 200), version_share(m, "v2", 0.10)],
        ),
        Scenario(
            "canary-50-50",
            "Canary stage 50/50: half of the traffic to v2.",
            "v2's share around a half.",
            "canary-50-50",
            LoadSpec(400),
            lambda m: [all_status(m, 200), version_share(m, "v2", 0.50)],
        ),
        Scenario(
            "canary-header",
            "The header route: `x-canary: always` goes to v2 whatever the weights.",
            "Every answer from v2.",
            None,
            LoadSpec(200, headers=CANARY),
            lambda m: [all_status(m, 200), version_share(m, "v2", 1.0)],
        ),
        Scenario(
            "retries",
            "calculator-v1-0 fails half of its requests; the route retries its 503s (gateway errors) twice, on another host.",
            "Compare with no-retries: the same replica fails as often, and the clients see (almost) none of it.",
            "outlier-detection-lenient",
            LoadSpec(600),
            lambda m: [
                replica_failed(m, "calculator-v1-0", 0.10),
                failures_hidden(m, "calculator-v1-0", 0.95),
                success_at_least(m, 0.99),
                failures_retried_or_seen(m, "calculator-v1-0"),
            ],
            pod_env=FAILING,
            kind_limit=ONE_POD_LIMIT,
        ),
        Scenario(
            "no-retries",
            "The same failing replica with the route's retries off (retries-off).",
            "Compare with retries: each 503 of calculator-v1-0 is now a client's 503.",
            "outlier-detection-lenient+retries-off",
            LoadSpec(600),
            lambda m: [
                replica_failed(m, "calculator-v1-0", 0.10),
                failures_reached_clients(m, "calculator-v1-0"),
                envoy_counter(m, "v1.upstream_rq_retry", "no request retried", lambda n: n == 0),
            ],
            pod_env=FAILING,
            kind_limit=ONE_POD_LIMIT,
        ),
        Scenario(
            "outlier-detection",
            "calculator-v1-0 fails every request; the base DestinationRule ejects it after 3 gateway errors (503) in a row.",
            "Each sidecar ejects it after a handful of requests; the retries hid those; then it gets nothing.",
            None,
            LoadSpec(400),
            lambda m: [
                success_at_least(m, 0.995),
                ejected_by_every_sidecar(m),
                replica_share_at_most(m, "calculator-v1-0", 0.05, "about 45%"),
            ],
            pod_env=BROKEN,
            kind_limit=ONE_POD_LIMIT,
        ),
        Scenario(
            "circuit-breaker",
            "circuit-breaker-tight: 1 connection and 1 queued request per sidecar to v2, which answers in 0.5 s.",
            "Requests past the pool fail at once (503, flag UO) without reaching v2, and are not retried.",
            "circuit-breaker-tight",
            LoadSpec(96, headers=CANARY),
            lambda m: [
                Check("some requests served, the others refused with 503", str(dict(sorted(m.statuses.items()))),
                      set(m.statuses) == {200, 503} and m.answered == m.requests),
                flag_count_is(m, "UO", 503, "an overflow"),
                flagged_duration(m, "UO", f"an overflow fails fast (< {SLOW_V2_SECONDS:g} s at the sidecar)",
                                 lambda low, high: high < SLOW_V2_SECONDS * 1000),
                calculators_answered_only(m, 200, ("calculator-v2-0",), "an overflow never reaches the app"),
                envoy_counter(m, "v2.upstream_rq_retry", "no overflow retried", lambda n: n == 0),
            ],
            pod_env=SLOW,
        ),
        Scenario(
            "fault-delay",
            "fault-delay: the sidecar holds half of the requests for 2 s before sending them.",
            "Half the calls flagged DI, each >= 2 s; the others fast; every answer still 200.",
            "fault-delay",
            LoadSpec(32),
            lambda m: [
                all_status(m, 200),
                flag_share(m, "DI", 0.5, "delayed"),
                flagged_duration(m, "DI", f"a delayed call takes >= {FAULT_DELAY_SECONDS:g} s",
                                 lambda low, high: low >= FAULT_DELAY_SECONDS * 1000 - ENVOY_TIMER_SLACK_MS),
                flagged_duration(m, "-", f"the others take < {FAULT_DELAY_SECONDS:g} s",
                                 lambda low, high: high < FAULT_DELAY_SECONDS * 1000),
                latency_p99_at_least(m, FAULT_DELAY_SECONDS),
            ],
        ),
        Scenario(
            "fault-abort",
            "fault-abort: the sidecar answers half of the requests with 503 itself.",
            "Half the answers 503, each flagged FI; the calculators never saw them, and nothing retried them.",
            "fault-abort",
            LoadSpec(400),
            lambda m: [
                status_share(m, 503, 0.5),
                flag_count_is(m, "FI", 503, "injected by the sidecar"),
                calculators_answered_only(m, 200, CALCULATOR_PODS, "an injected abort is neither sent nor retried"),
            ],
        ),
        Scenario(
            "timeout",
            "Every v1 replica takes 4 s; the route gives all attempts 3 s together (canary-100-0: all to v1).",
            "504 at 3 s, not 4: two tries cut at 1 s (perTryTimeout), the third by the route timeout (flag UT).",
            "canary-100-0",
            LoadSpec(8, concurrency=8),
            lambda m: [
                all_status(m, 504),
                latency_between(m, ROUTE_TIMEOUT_SECONDS, ROUTE_TIMEOUT_SECONDS + 0.5),
                flag_count_is(m, "UT", 504, "the route's timeout"),
                every_call_attempted(m, ATTEMPTS),
            ],
            pod_env=SLOW,
        ),
        Scenario(
            "mirror",
            "mirror-v1-to-v2: v1 answers every request; v2 gets a copy whose answer is dropped.",
            "Clients see only v1; v2 answered as many copies.",
            "mirror-v1-to-v2",
            LoadSpec(240),
            lambda m: [all_status(m, 200), version_share(m, "v1", 1.0), mirrored_every_request(m)],
            mirrored=True,
        ),
        Scenario(
            "kill-replica",
            "calculator-v1-0 SIGKILLed under load (the whole pod); the runner restarts it, as a ReplicaSet would.",
            "Requests in flight on it and connections refused are retried elsewhere: the clients see nothing. It comes "
            "back, but each sidecar ejected it (connect failures count as gateway errors): it gets traffic again when "
            "the ejection (baseEjectionTime) ends.",
            None,
            LoadSpec(560, rate=12.5),
            lambda m: [
                success_at_least(m, 0.995),
                came_back(m, 30.0),
                envoy_counter(m, "v1.upstream_rq_retry", "the sidecars retried what the kill broke", lambda n: n > 0),
            ],
            kill="calculator-v1-0",
        ),
    ]
}


def verdict(scenario: Scenario, m: Measurement) -> Verdict:
    return Verdict(scenario.expect(m))


# -- rendering --------------------------------------------------------------------------------------


def _counts(counts: dict | None) -> str:
    if counts is None:
        return "not measured"
    return " · ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))) or "none"


def _versions(m: Measurement) -> str:
    if m.versions is None:
        return "not measured"
    n = sum(m.versions.values())
    parts = []
    for subset in sorted(m.versions):
        count = m.versions[subset]
        low, high = wilson_interval(count, n)
        parts.append(f"{subset} {count} ({_pct(count, n)}; 99.9% CI {low:.1%}-{high:.1%})")
    return " · ".join(parts) or "none"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def render(scenario: Scenario, m: Measurement, v: Verdict) -> str:
    env = "; ".join(f"{pod}: {' '.join(f'{k}={x}' for k, x in e.items())}" for pod, e in scenario.pod_env.items())
    rows = [
        ("scenario", f"{scenario.name}: {scenario.title}"),
        ("policy", "istio/" + (" + " + " + ".join(scenario.files()) if scenario.istio else " (the base)")),
        ("fault knobs", env or "none"),
        ("load", f"hey, {scenario.load.describe()}, through the ingress ({m.where})"),
        ("requests", f"{m.requests} sent, {m.answered} answered in {m.seconds:.1f} s"),
        ("success (200)", f"{m.ok} of {m.requests} = {m.success:.2%}"),
        ("status codes", _counts(m.statuses)),
        ("flags, ingress", _counts(m.ingress_flags)),
        ("flags, sidecars", _counts(m.sidecar_flags)),
        ("share per version", _versions(m)),
        ("latency", f"p50 {_ms(m.latency.get('p50'))} · p99 {_ms(m.latency.get('p99'))} · max {_ms(m.latency.get('max'))}"),
    ]
    if m.envoy is not None:
        interesting = {k: n for k, n in m.envoy.items() if n and not k.endswith("upstream_rq_total")}
        rows.append(("sidecar counters", _counts(interesting)))
    if m.replicas is not None:
        rows.append(("replicas answered", " · ".join(
            f"{pod} " + (", ".join(f"{n}x{s}" for s, n in sorted(c.items())) or "0") for pod, c in m.replicas.items()
        )))
    if m.killed:
        rows.append(("killed", f"{m.killed['pod']} (pid {m.killed.get('pid')}) at {m.killed['at']:.1f} s"))
    rows += [("note", note) for note in m.notes]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {value}" for k, value in rows]
    lines.append("-" * 100)
    lines.append(f"lesson  {scenario.lesson}")
    for check in v.checks:
        lines.append(f"{check.mark:<4}  {check.expectation}: {check.observed}")
    outcome = "PASS" if v.passed else "FAIL"
    skipped = len(v.checks) - len(v.measured)
    tail = f" ({skipped} of {len(v.checks)} checks not measurable here)" if skipped else ""
    lines.append(f"verdict  {outcome}: the expectation {'held' if v.passed else 'did not hold'}{tail}")
    return "\n".join(lines)


def report(scenario: Scenario, m: Measurement, v: Verdict) -> dict:
    return {
        "scenario": scenario.name,
        "title": scenario.title,
        "policy": scenario.files(),
        "pod_env": scenario.pod_env,
        "load": asdict(scenario.load),
        "measurement": m.to_json(),
        "checks": [asdict(c) for c in v.checks],
        "passed": v.passed,
    }


# -- progress -------------------------------------------------------------------------------------


class Progress:
    """One line on stderr: rewritten in place on a terminal, written once at the end elsewhere."""

    def __init__(self, name: str, total: int, stream: TextIO | None = None):
        self.name, self.total = name, total
        self.stream = stream if stream is not None else sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()

    def tick(self, elapsed: float, done: int | None) -> None:
        if self.live:
            count = f"{done}/{self.total} requests" if done is not None else f"{self.total} requests"
            self.stream.write(f"\r{self.name}: {count}, {elapsed:.1f} s ")
            self.stream.flush()

    def finish(self, elapsed: float, answered: int) -> None:
        self.stream.write(("\r" if self.live else "") + f"{self.name}: {answered}/{self.total} answered in {elapsed:.1f} s\n")
        self.stream.flush()


# -- running on the local mesh ----------------------------------------------------------------------


def _sidecar_counters(mesh) -> dict[str, dict[str, int]]:
    """Per sidecar: the subset clusters' counters and the fault filter's, as "v1.upstream_rq_retry"."""
    found = {}
    for sidecar in SIDECARS:
        stats = mesh.envoys[sidecar].stats("cluster.outbound|80|")
        stats.update(mesh.envoys[sidecar].stats(FAULT_PREFIX))
        values = {}
        for subset in SUBSETS:
            for name in CLUSTER_STATS:
                values[f"{subset}.{name}"] = stats.get(f"cluster.{subset_cluster(subset)}.{name}", 0)
        for name in FAULT_STATS:
            values[f"fault.{name}"] = stats.get(FAULT_PREFIX + name, 0)
        found[sidecar] = values
    return found


# A slow replica may still be busy with attempts the sidecars gave up on (timeout: 24 attempts of
# 4 s on two replicas of 8 threads), and its /metrics waits for a free thread: up to 8 s there.
REPLICA_SCRAPE_TIMEOUT_SECONDS = 20.0


def _replica_counts(mesh) -> dict[str, Counter]:
    return {
        pod: calcular_requests(mesh.services[pod].url, REPLICA_SCRAPE_TIMEOUT_SECONDS) for pod in CALCULATOR_PODS
    }


def load_figures(result) -> dict:
    """The Measurement fields every run takes from its load, on the local mesh or on kind."""
    return {
        "requests": result.requests,
        "answered": len(result.samples),
        "seconds": round(result.seconds, 2),
        "statuses": dict(Counter(s.status for s in result.samples)),
        "latency": latency_summary(result),
    }


def summarize_calls(entries: list[dict]) -> dict:
    """The gateway sidecars' access-log entries of calls to the calculator, counted. Pure."""
    calls = [e for e in entries if e.get("path") == "/calcular"]
    flags, spans, attempts, versions = Counter(), {}, Counter(), Counter()
    for entry in calls:
        duration = int(entry.get("duration") or 0)
        for flag in flags_of(entry):
            flags[flag] += 1
            low, high = spans.get(flag, (duration, duration))
            spans[flag] = (min(low, duration), max(high, duration))
        attempts[int(entry.get("upstream_attempts") or 0)] += 1
        if int(entry.get("response_code") or 0) == 200:
            versions[subset_of(entry.get("upstream_cluster")) or "?"] += 1
    return {
        "sidecar_calls": len(calls),
        "sidecar_flags": dict(flags),
        "flag_ms": {f: {"min": lo, "max": hi} for f, (lo, hi) in spans.items()},
        "attempts": dict(attempts),
        "versions": dict(versions),
    }


def latency_summary(result: LoadResult) -> dict[str, float | None]:
    seconds = [s.seconds for s in result.samples]
    return {
        "min": min(seconds) if seconds else None,
        "p50": percentile(seconds, 0.50),
        "p99": percentile(seconds, 0.99),
        "max": max(seconds) if seconds else None,
    }


class _Killer:
    """SIGKILLs a replica's whole process group once enough requests are answered, then times its return."""

    def __init__(self, mesh, pod: str, after: int, count: Callable[[], int], bound: float):
        self.mesh, self.pod, self.after, self.count, self.bound = mesh, pod, after, count, bound
        self.started = time.monotonic()
        self.info: dict | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"kill-{pod}", daemon=True)

    def _run(self) -> None:
        try:
            service = self.mesh.services[self.pod]
            wait_until(lambda: self.count() >= self.after, self.bound, interval=0.02, what=f"{self.after} requests answered")
            pid, restarts = service.pid, service.restarts
            os.killpg(pid, signal.SIGKILL)  # the gunicorn master and its worker: the whole pod
            killed_at = time.monotonic()
            self.info = {"pod": self.pod, "pid": pid, "at": killed_at - self.started, "back_after": None}
            wait_until(lambda: service.restarts > restarts and service.ready(), 30, what=f"{self.pod} back")
            self.info.update(back_after=time.monotonic() - killed_at, new_pid=service.pid)
        except BaseException as error:  # reported in the measurement's notes
            self.error = error


def measure_local(mesh, scenario: Scenario, progress: Progress | None = None) -> Measurement:
    """Apply the scenario to a running mesh (started with its pod_env), load it, and measure."""
    mesh.switch(scenario.istio)
    run_dir = mesh.options.run_dir
    ingress = AccessLogTail(access_log_path(run_dir, "ingress"))
    sidecars = [AccessLogTail(access_log_path(run_dir, s)) for s in SIDECARS]
    counters_before, replicas_before = _sidecar_counters(mesh), _replica_counts(mesh)
    restarts_before = {pod: mesh.services[pod].restarts for pod in CALCULATOR_PODS}
    spec = scenario.load

    killer = None
    if scenario.kill:
        killer = _Killer(mesh, scenario.kill, int(scenario.kill_at * spec.requests), ingress.count, spec.bound_seconds())
        killer.thread.start()
    progress = progress or Progress(scenario.name, spec.requests)
    result = run_load(mesh.ingress_url, spec, on_tick=lambda elapsed: progress.tick(elapsed, ingress.count()))
    progress.finish(result.seconds, len(result.samples))
    notes = []
    if killer is not None:
        killer.thread.join(35)
        if killer.error is not None:
            notes.append(f"kill: {killer.error}")

    # Envoy writes its access log every 0.2 s: wait (bounded) for every request's line.
    def logged():
        return ingress.count() >= len(result.samples) and sum(t.count() for t in sidecars) >= len(result.samples)

    try:
        wait_until(logged, 5, what="every request in the access logs")
    except TimeoutError as error:
        notes.append(str(error))
    mirrored = None
    if scenario.mirrored:
        mirrored = _wait_for_copies(mesh, replicas_before, notes)

    counters_after, replicas_after = _sidecar_counters(mesh), _replica_counts(mesh)
    envoy = Counter()
    for sidecar in SIDECARS:
        for name, value in counters_after[sidecar].items():
            envoy[name] += value - counters_before[sidecar].get(name, 0)
    ejections = {
        sidecar: counters_after[sidecar]["v1.outlier_detection.ejections_enforced_total"]
        - counters_before[sidecar]["v1.outlier_detection.ejections_enforced_total"]
        for sidecar in SIDECARS
    }
    replicas = {}
    for pod in CALCULATOR_PODS:
        if mesh.services[pod].restarts != restarts_before[pod]:
            # Its counters started again from zero with the new process: these are since then.
            replicas[pod] = dict(replicas_after[pod])
            notes.append(f"{pod} restarted: its answers counted since the restart")
        else:
            replicas[pod] = dict(replicas_after[pod] - replicas_before[pod])
    calls = summarize_calls([entry for tail in sidecars for entry in tail.read()])
    ingress_flags = Counter(flag for entry in ingress.read() for flag in flags_of(entry))
    return Measurement(
        where="local",
        **load_figures(result),
        ingress_flags=dict(ingress_flags),
        replicas=replicas,
        envoy=dict(envoy),
        ejections=ejections,
        mirrored=mirrored,
        killed=killer.info if killer else None,
        notes=notes,
        **calls,
    )


def _wait_for_copies(mesh, before: dict[str, Counter], notes: list[str]) -> dict[str, int]:
    """v1's and v2's 200s since ``before``, once v2 has answered as many copies (fire and forget: they lag)."""

    def answered():
        now = _replica_counts(mesh)
        v1 = sum((now[p] - before[p])[200] for p in ("calculator-v1-0", "calculator-v1-1"))
        v2 = (now["calculator-v2-0"] - before["calculator-v2-0"])[200]
        return {"v1": v1, "v2": v2}

    try:
        return wait_until(lambda: (a := answered())["v2"] >= a["v1"] and a, 10, what="the mirrored copies")
    except TimeoutError as error:
        notes.append(str(error))
        return answered()


def run_local(scenario: Scenario, root, run_dir, progress: Progress | None = None, say=lambda line: None) -> Measurement:
    """A mesh of its own for one scenario: started with its knobs and files, measured, stopped."""
    from localmesh.mesh import Mesh, MeshOptions
    from localmesh.processes import free_port

    options = MeshOptions(
        root=root,
        run_dir=run_dir,
        ingress_port=free_port(),
        scenario=scenario.istio,
        pod_env=scenario.pod_env,
        # The demo stops the mesh right after measuring: no drain to wait for.
        common_env={"SHUTDOWN_DRAIN_SECONDS": "0"},
    )
    mesh = Mesh(options, say=say)
    say(f"starting the local mesh for {scenario.name}...")
    mesh.start()
    try:
        return measure_local(mesh, scenario, progress)
    finally:
        mesh.stop()
