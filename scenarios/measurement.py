"""What one scenario's run measured, as plain data, and the pure summaries that fill it."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from localmesh.load import LoadResult, percentile
from localmesh.observe import flags_of, subset_of


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
    def failed(self) -> int:
        """Requests that failed as the clients saw them: a 5xx, or no answer at all (4xx are the clients' own)."""
        return sum(n for status, n in self.statuses.items() if status >= 500) + (self.requests - self.answered)

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

