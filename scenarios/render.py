"""A scenario's verdict for people (the table), for programs (the JSON report), and the progress line."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import TextIO

from localmesh.observe import wilson_interval
from scenarios.catalogue import Scenario
from scenarios.checks import Verdict, percent
from scenarios.measurement import Measurement
from slo.budget import Assessment, assess, objective


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
        parts.append(f"{subset} {count} ({percent(count, n)}; 99.9% CI {low:.1%}-{high:.1%})")
    return " · ".join(parts) or "none"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def slo_rows(a: Assessment) -> list[tuple[str, str]]:
    """What the run's failures would cost the availability SLO of slo/rules.yaml, were they to last."""
    if a.availability is None:
        return [("SLO", "no request: nothing to judge")]
    crossed = ", ".join(a.alerts_crossed) or "none: within budget"
    return [
        ("SLO availability", f"{a.availability:.2%} as clients saw it ({a.failed} of {a.requests} failed: 5xx or no answer); "
                             f"objective {a.objective:.1%}"),
        ("SLO burn rate", f"{a.burn_rate:.1f}x the budget's pace: an hour of it spends {a.budget_per_hour_share:.1%} "
                          f"of a {objective().period_label} error budget"),
        ("SLO alerts crossed", crossed),
    ]


def render(scenario: Scenario, m: Measurement, v: Verdict) -> str:
    rows = [
        ("scenario", f"{scenario.name}: {scenario.title}"),
        ("policy", "istio/" + (" + " + " + ".join(scenario.files()) if scenario.policy else " (the base)")),
        ("faults", scenario.describe_faults()),
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
    rows += slo_rows(assess(m.requests, m.failed))
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
        "faults": {pod: fault.to_json() for pod, fault in scenario.faults.items()},
        "load": asdict(scenario.load),
        "measurement": m.to_json(),
        "checks": [asdict(c) for c in v.checks],
        "slo": assess(m.requests, m.failed).as_dict(),
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
