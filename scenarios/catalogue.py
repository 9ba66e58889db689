"""The one catalogue of scenarios: a name, the policy it applies, the faults it sets, the load it
sends and what it expects. ``make scenarios`` lists it; ``make scenario NAME=x`` applies x to the
running mesh; ``make demo NAME=x`` applies x to a fresh one, loads it and judges it; the kind
targets take the same names.

A scenario is data, built from the checkout (``catalogue(root)``): the policy's numbers (timeouts,
attempts, weights, delays, aborts) come from the YAML it applies (``scenarios.policy``) and the
pods it breaks from the manifests (``scenarios.topology``). Pure apart from reading those files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from calculator.faults import Fault
from localmesh.load import LoadSpec
from localmesh.loader import Layout
from localmesh.observe import ENVOY_TIMER_SLACK_MS
from scenarios import checks as c
from scenarios.checks import Check, Verdict
from scenarios.measurement import Measurement
from scenarios.policy import calculator_policy
from scenarios.topology import read_topology

BASE = "base"
CANARY = {"x-canary": "always"}
# The circuit-breaker scenario's own fault: v2 slow enough to keep requests in flight.
SLOW_V2_SECONDS = 0.5
# Every load keeps at most 8 requests in flight: istio/gateway-destinationrule.yaml lets the
# ingress queue 8 requests for a connection to the gateways (http1MaxPendingRequests), and
# a burst of more on a cold connection pool would overflow there (503 UO at the ingress).


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str  # what it shows, one line
    lesson: str  # what to read in the table
    policy: tuple[str, ...]  # istio/scenarios/ files applied over istio/, in order; (): istio/ as it is
    load: LoadSpec
    expect: Callable[[Measurement], list[Check]]
    faults: Mapping[str, Fault] = field(default_factory=dict)  # pod -> its runtime fault
    kill: str | None = None  # a pod SIGKILLed under load
    kill_at: float = 0.2  # share of the requests answered by then
    mirrored: bool = False  # wait for the mirrored copies before counting

    def files(self) -> list[str]:
        return [f"istio/scenarios/{name}.yaml" for name in self.policy]

    def describe_faults(self) -> str:
        from calculator.admin_client import describe

        return "; ".join(f"{pod}: {describe(fault.to_json())}" for pod, fault in self.faults.items()) or "none"


def verdict(scenario: Scenario, m: Measurement) -> Verdict:
    return Verdict(scenario.expect(m))


def catalogue(root: Path) -> dict[str, Scenario]:
    """Every scenario, its numbers read from the checkout at ``root``."""
    layout = Layout(Path(root))
    pods = read_topology(layout)
    first_v1, v2 = pods.pod("v1", 0), pods.pod("v2", 0)

    def policy(*files: str):
        return calculator_policy(layout, files)

    base = policy()
    lenient = "destination-rule-calculator-lenient-ejection"
    no_retries = "virtual-service-calculator-no-retries"
    lenient_errors = policy(lenient).subsets["v1"].consecutive_gateway_errors
    all_v1 = "virtual-service-calculator-100-0"
    timeout = policy(all_v1).split
    # Slower than the route's whole budget: every try is cut, none answers.
    too_slow = timeout.timeout_seconds + 1
    breaker = policy("destination-rule-calculator-circuit-breaker").subsets["v2"]
    delay = policy("virtual-service-calculator-fault-delay").split
    abort = policy("virtual-service-calculator-fault-abort").split
    mirrored = "virtual-service-calculator-mirror-v2"
    mirror = policy(mirrored).split
    ejected_after = base.subsets["v1"].consecutive_gateway_errors
    # What a v1 replica would get if nothing ejected it: v1's weight, shared by its replicas.
    unejected_share = base.split.weight_share("v1") / len(pods.calculators["v1"])
    failing = {first_v1: Fault(errors=0.5)}

    scenarios = [
        Scenario(
            BASE,
            "The base policy, nothing failing: the reference for the others (and what `make scenario NAME=base` restores).",
            f"Every request answered; {base.split.weight_share('v2'):.0%} from v2 (the base canary weights).",
            (),
            LoadSpec(400),
            lambda m: [c.all_status(m, 200), c.version_share(m, "v2", base.split.weight_share("v2")), c.no_flags(m)],
        ),
        *[
            Scenario(
                f"canary-{stage}",
                f"Canary stage {stage.replace('-', '/')}: the VirtualService's weights split the traffic between v1 and v2.",
                "v2's share, and its 99.9% interval: with a few hundred requests a split is only known to a few percent.",
                (f"virtual-service-calculator-{stage}",),
                LoadSpec(400),
                lambda m, share=policy(f"virtual-service-calculator-{stage}").split.weight_share("v2"): [
                    c.all_status(m, 200),
                    c.version_share(m, "v2", share),
                ],
            )
            for stage in ("90-10", "50-50", "0-100")
        ],
        Scenario(
            "canary-header",
            "The header route: `x-canary: always` goes to v2 whatever the weights.",
            "Every answer from v2.",
            (),
            LoadSpec(200, headers=CANARY),
            lambda m: [c.all_status(m, 200), c.version_share(m, "v2", base.header.weight_share("v2"))],
        ),
        Scenario(
            "retries",
            f"{first_v1} fails half of its requests; the route retries its 503s (gateway errors) "
            f"{base.split.attempts - 1} times, on another host (ejection only after {lenient_errors} in a row, so the "
            "retries are seen on their own).",
            "Compare with no-retries: the same replica fails as often, and the clients see (almost) none of it.",
            (lenient,),
            LoadSpec(600),
            lambda m: [
                c.replica_failed(m, first_v1, 0.10),
                c.failures_hidden(m, first_v1, 0.95),
                c.success_at_least(m, 0.99),
                c.failures_retried_or_seen(m, first_v1),
            ],
            faults=failing,
        ),
        Scenario(
            "no-retries",
            f"The same failing replica with the route's retries off ({no_retries}).",
            f"Compare with retries: each 503 of {first_v1} is now a client's 503.",
            (lenient, no_retries),
            LoadSpec(600),
            lambda m: [
                c.replica_failed(m, first_v1, 0.10),
                c.failures_reached_clients(m, first_v1),
                c.envoy_counter(m, "v1.upstream_rq_retry", "no request retried", lambda n: n == 0),
            ],
            faults=failing,
        ),
        Scenario(
            "outlier-detection",
            f"{first_v1} fails every request; the base DestinationRule ejects it after {ejected_after} "
            "gateway errors (503) in a row.",
            "Each sidecar ejects it after a handful of requests; the retries hid those; then it gets nothing.",
            (),
            LoadSpec(400),
            lambda m: [
                c.success_at_least(m, 0.995),
                c.ejected_by_every_sidecar(m, first_v1),
                c.replica_share_at_most(m, first_v1, 0.05, f"about {unejected_share:.0%}"),
            ],
            faults={first_v1: Fault(errors=1.0)},
        ),
        Scenario(
            "circuit-breaker",
            f"A tight circuit breaker: {breaker.max_connections} connection and {breaker.max_pending_requests} "
            f"queued request per sidecar to v2, which answers in {SLOW_V2_SECONDS:g} s.",
            "Requests past the pool fail at once (503, flag UO) without reaching v2, and are not retried.",
            ("destination-rule-calculator-circuit-breaker",),
            LoadSpec(96, headers=CANARY),
            lambda m: [
                Check("some requests served, the others refused with 503", str(dict(sorted(m.statuses.items()))),
                      set(m.statuses) == {200, 503} and m.answered == m.requests),
                c.flag_count_is(m, "UO", 503, "an overflow"),
                c.flagged_duration(m, "UO", f"an overflow fails fast (< {SLOW_V2_SECONDS:g} s at the sidecar)",
                                   lambda low, high: high < SLOW_V2_SECONDS * 1000),
                c.calculators_answered_only(m, 200, (v2,), "an overflow never reaches the app"),
                c.envoy_counter(m, "v2.upstream_rq_retry", "no overflow retried", lambda n: n == 0),
            ],
            faults={v2: Fault(delay_seconds=SLOW_V2_SECONDS)},
        ),
        Scenario(
            "fault-delay",
            f"Fault injection: the sidecar holds {delay.delay_share:.0%} of the requests for {delay.delay_seconds:g} s before sending them.",
            f"{delay.delay_share:.0%} of the calls flagged DI, each >= {delay.delay_seconds:g} s; the others fast; every answer still 200.",
            ("virtual-service-calculator-fault-delay",),
            LoadSpec(32),
            lambda m: [
                c.all_status(m, 200),
                c.flag_share(m, "DI", delay.delay_share, "delayed"),
                c.flagged_duration(m, "DI", f"a delayed call takes >= {delay.delay_seconds:g} s",
                                   lambda low, high: low >= delay.delay_seconds * 1000 - ENVOY_TIMER_SLACK_MS),
                c.flagged_duration(m, "-", f"the others take < {delay.delay_seconds:g} s",
                                   lambda low, high: high < delay.delay_seconds * 1000),
                c.latency_p99_at_least(m, delay.delay_seconds),
            ],
        ),
        Scenario(
            "fault-abort",
            f"Fault injection: the sidecar answers {abort.abort_share:.0%} of the requests with {abort.abort_status} itself.",
            f"{abort.abort_share:.0%} of the answers {abort.abort_status}, each flagged FI; the calculators never saw "
            "them, and nothing retried them.",
            ("virtual-service-calculator-fault-abort",),
            LoadSpec(400),
            lambda m: [
                c.status_share(m, abort.abort_status, abort.abort_share),
                c.flag_count_is(m, "FI", abort.abort_status, "injected by the sidecar"),
                c.calculators_answered_only(m, 200, pods.calculator_pods, "an injected abort is neither sent nor retried"),
            ],
        ),
        Scenario(
            "timeout",
            f"Every v1 replica takes {too_slow:g} s; the route gives all attempts {timeout.timeout_seconds:g} s together "
            "(all traffic to v1).",
            f"504 at {timeout.timeout_seconds:g} s, not {too_slow:g}: tries cut at {timeout.per_try_timeout_seconds:g} s "
            "(perTryTimeout), the last by the route timeout (flag UT).",
            (all_v1,),
            LoadSpec(8, concurrency=8),
            lambda m: [
                c.all_status(m, 504),
                c.latency_between(m, timeout.timeout_seconds, timeout.timeout_seconds + 0.5),
                c.flag_count_is(m, "UT", 504, "the route's timeout"),
                c.every_call_attempted(
                    m, timeout.attempts,
                    f"perTryTimeout {timeout.per_try_timeout_seconds:g} s x {timeout.attempts} "
                    f"within the {timeout.timeout_seconds:g} s budget",
                ),
            ],
            faults={pod: Fault(delay_seconds=too_slow) for pod in pods.calculators["v1"]},
        ),
        Scenario(
            "mirror",
            f"Mirroring: {mirror.mirror_subset} gets a copy of every request, and its answer is dropped.",
            f"Clients see only {', '.join(mirror.weights)}; {mirror.mirror_subset} answered as many copies.",
            (mirrored,),
            LoadSpec(240),
            lambda m: [
                c.all_status(m, 200),
                *[c.version_share(m, subset, mirror.weight_share(subset)) for subset in mirror.weights],
                c.mirrored_every_request(m),
            ],
            mirrored=True,
        ),
        Scenario(
            "kill-replica",
            f"{first_v1} SIGKILLed under load (the whole pod); it is restarted, as a ReplicaSet would.",
            "Requests in flight on it and connections refused are retried elsewhere: the clients see nothing. It comes "
            "back, but each sidecar ejected it (connect failures count as gateway errors): it gets traffic again when "
            f"the ejection ({base.subsets['v1'].base_ejection_seconds:g} s, baseEjectionTime) ends.",
            (),
            LoadSpec(560, rate=12.5),
            lambda m: [
                c.success_at_least(m, 0.995),
                c.came_back(m, 30.0),
                c.envoy_counter(m, "v1.upstream_rq_retry", "the sidecars retried what the kill broke", lambda n: n > 0),
            ],
            kill=first_v1,
        ),
    ]
    return {s.name: s for s in scenarios}
