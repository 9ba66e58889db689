"""The checks: pure functions of a measurement, each a line of the verdict. A check that cannot be
measured where the scenario ran (on kind, the replicas' and Envoys' own counters) neither passes
nor fails."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

from localmesh.observe import ENVOY_TIMER_SLACK_MS, binomial_interval
from scenarios.measurement import Measurement


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


def percent(part: float, whole: float) -> str:
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
        f"{count} ({percent(count, n)})",
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
    return Check(expectation, f"{failures} ({percent(failures, m.requests)})", failures >= at_least * m.requests)


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


def ejected_by_every_sidecar(m: Measurement, pod: str) -> Check:
    expectation = f"{pod} ejected by each gateway sidecar"
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
    return Check(expectation, f"{total} ({percent(total, m.requests)})", total <= share * m.requests)


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
        f"{count} ({percent(count, n)})",
        low <= count <= high,
    )


def status_share(m: Measurement, status: int, share: float) -> Check:
    count = m.statuses.get(status, 0)
    low, high = binomial_interval(share, m.requests)
    return Check(
        f"{status}s consistent with {share:.0%} (99.9%: {low:.0f}-{high:.0f} of {m.requests})",
        f"{count} ({percent(count, m.requests)})" + _others_than(m, {200, status}),
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


def every_call_attempted(m: Measurement, attempts: int, why: str) -> Check:
    expectation = f"every call made {attempts} attempts ({why})"
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

