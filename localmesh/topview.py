"""What ``make top`` shows: readings of the mesh's counters turned into rates, and drawn. Pure.

``localmesh.top`` gathers (the Envoys' admin stats, the replicas' /metrics, the local Prometheus);
everything here is a function of what it gathered, so a test feeds readings and snapshots, broken
ones included, and reads the frame.

Each source (a replica's /metrics, an Envoy's admin stats) is read as cumulative counters; a rate
is the growth of a source's counters between two readings, summed over the sources that answered
both times. A counter that went down is a restarted process: its count since the restart is its
growth, as Prometheus' ``rate()`` takes it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields

from rich.console import Group
from rich.table import Table
from rich.text import Text

# The apps' routes that are not requests of the public (as the dashboard leaves them out).
PROBE_ROUTES = ("/healthz", "/readyz", "/metrics")
# An Istio outbound cluster's stat: cluster.outbound|<port>|<subset>|<service>.<namespace>.svc.cluster.local.<stat>
_CLUSTER_STAT = re.compile(r"^cluster\.outbound\|\d+\|(?P<subset>[^|]*)\|(?P<service>[^.|]+)\.[^|]*?\.svc\.cluster\.local\.(?P<stat>.+)$")
_CODE = re.compile(r"^upstream_rq_(?P<code>[1-5]\d\d)$")
_WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, order=True)
class RowKey:
    """A row: a workload and its version (the pods' app and version labels), or the ingress."""

    app: str
    version: str = ""

    @property
    def label(self) -> tuple[str, str]:
        return (self.app, self.version or "-")


INGRESS = RowKey("ingress")


@dataclass(frozen=True)
class Counters:
    """What one source says of one row, at one instant. None: this source does not measure it."""

    requests: float | None = None  # answered, cumulative
    failed: float | None = None  # answered with a 5xx, cumulative
    retries: float | None = None  # retries sent to it by an Envoy, cumulative
    overflows: float | None = None  # requests refused by its circuit breaker, cumulative
    ejected: float | None = None  # its hosts ejected now (a gauge)

    def __add__(self, other: "Counters") -> "Counters":
        return Counters(**{f.name: _add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})


CUMULATIVE = ("requests", "failed", "retries", "overflows")


def _add(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else a + b


@dataclass(frozen=True)
class Reading:
    """Every source's counters at one instant (``at``: time.monotonic())."""

    at: float
    sources: Mapping[str, Mapping[RowKey, Counters]]  # source name -> row -> counters
    rows: tuple[RowKey, ...]  # the rows to show, in order
    pods: Mapping[RowKey, tuple[int, int]]  # row -> (sources answering, sources in all)
    down: tuple[str, ...] = ()  # sentences: which source did not answer
    scenario: str = "base"


@dataclass(frozen=True)
class SloState:
    """One SLO as the local Prometheus records it (slo/rules.yaml)."""

    slo: str
    budget_left: float | None  # share of the window's budget left; None: no request yet
    burn: Mapping[str, float]  # window ("5m") -> burn rate
    firing: tuple[str, ...] = ()  # "page 1h/5m"
    pending: tuple[str, ...] = ()


@dataclass(frozen=True)
class FromPrometheus:
    percentiles: Mapping[RowKey, tuple[float | None, float | None]]  # row -> (p50, p99) in ms
    slos: tuple[SloState, ...]


@dataclass(frozen=True)
class Row:
    key: RowKey
    pods: tuple[int, int] | None
    rps: float | None  # None: not measured (no second reading, or every source down)
    success: float | None  # None: no request in the window
    p50_ms: float | None = None
    p99_ms: float | None = None
    retries_per_s: float | None = None  # None: no Envoy sends to it
    ejected: int | None = None
    overflows_per_s: float | None = None
    burn: float | None = None  # its 5xx share over the window / the availability SLO's budget


@dataclass(frozen=True)
class Snapshot:
    scenario: str
    seconds: float  # the window of the rates; 0: one reading only
    rows: tuple[Row, ...]
    slos: tuple[SloState, ...] | None  # None: no Prometheus to ask
    budget: float  # the share of requests the availability SLO lets fail (slo/rules.yaml)
    notes: tuple[str, ...] = ()


# -- from what a source serves to counters ---------------------------------------------------------


def app_counters(samples: Mapping[tuple[str, tuple], float]) -> Counters:
    """A replica's requests and 5xx answers from its /metrics (``observe.scrape_url``'s samples),
    probes and scrapes left out."""
    requests = failed = 0.0
    for (name, labels), value in samples.items():
        labels = dict(labels)
        if name != "http_server_requests_total" or labels.get("route") in PROBE_ROUTES:
            continue
        requests += value
        if str(labels.get("status", "")).startswith("5"):
            failed += value
    return Counters(requests=requests, failed=failed)


def envoy_counters(
    stats: Mapping[str, float], versions: Mapping[str, Sequence[str]], answers_for: RowKey | None = None
) -> dict[RowKey, Counters]:
    """An Envoy's outbound clusters' stats, by the row they send to: retries, circuit-breaker
    overflows, hosts ejected now. A subset's cluster is that version's row; a cluster without a
    subset is the row of a service with one version only (``versions``: app -> its versions).

    ``answers_for``: the row this Envoy answers for (the ingress): every response code it counted,
    the 503 and 504 it made itself included, are that row's requests.
    """
    found: dict[RowKey, Counters] = {}
    answered = Counters(requests=0.0, failed=0.0)
    for name, value in stats.items():
        match = _CLUSTER_STAT.match(name)
        if match is None:
            continue
        stat = match["stat"]
        code = _CODE.match(stat)
        if answers_for is not None and code:
            answered += Counters(requests=value, failed=value if code["code"].startswith("5") else 0.0)
            continue
        counted = {
            "upstream_rq_retry": Counters(retries=value),
            "upstream_rq_pending_overflow": Counters(overflows=value),
            "outlier_detection.ejections_active": Counters(ejected=value),
        }.get(stat)
        if counted is None:
            continue
        service, subset = match["service"], match["subset"]
        known = list(versions.get(service, ()))
        if subset:
            row = RowKey(service, subset)
        elif len(known) == 1:
            row = RowKey(service, known[0])
        else:
            continue  # a service of several versions, sent to without a subset: no one row is it
        # Every field measured, 0 where this stat is not: "no retry" is not "not measured".
        zero = Counters(retries=0.0, overflows=0.0, ejected=0.0)
        found[row] = found.get(row, zero) + counted
    if answers_for is not None:
        found[answers_for] = found.get(answers_for, Counters()) + answered
    return found


# -- from readings to a snapshot ---------------------------------------------------------------------


def growth(before: Counters, after: Counters) -> Counters:
    """How much each cumulative counter grew; a counter that went down restarted from 0."""
    reset = any(
        getattr(before, name) is not None and getattr(after, name) is not None and getattr(after, name) < getattr(before, name)
        for name in CUMULATIVE
    )
    values = {}
    for name in CUMULATIVE:
        old, new = getattr(before, name), getattr(after, name)
        values[name] = None if new is None else new if (reset or old is None) else new - old
    return Counters(**values, ejected=after.ejected)


def snapshot(
    before: Reading,
    after: Reading,
    budget: float,
    prometheus: FromPrometheus | None = None,
    notes: Iterable[str] = (),
) -> Snapshot:
    """The rates between two readings (``before`` may be ``after``: no rate yet)."""
    seconds = max(after.at - before.at, 0.0)
    grown: dict[RowKey, Counters] = {}
    now: dict[RowKey, Counters] = {}
    for source, rows in after.sources.items():
        for key, counters in rows.items():
            now[key] = now.get(key, Counters()) + counters
            previous = before.sources.get(source, {}).get(key)
            if previous is not None and seconds > 0:  # a source that was down then has no growth to tell
                grown[key] = grown.get(key, Counters()) + growth(previous, counters)
    percentiles = prometheus.percentiles if prometheus else {}
    result = []
    for key in after.rows:
        delta, current = grown.get(key, Counters()), now.get(key, Counters())
        # No request in the window: no share, never a 0/0.
        share = (delta.failed or 0.0) / delta.requests if delta.requests else None
        p50, p99 = percentiles.get(key, (None, None))
        result.append(
            Row(
                key=key,
                pods=after.pods.get(key),
                rps=_per_second(delta.requests, seconds) if current.requests is not None else None,
                success=None if share is None else 1 - share,
                p50_ms=p50,
                p99_ms=p99,
                retries_per_s=_per_second(delta.retries, seconds) if current.retries is not None else None,
                ejected=None if current.ejected is None else int(current.ejected),
                overflows_per_s=_per_second(delta.overflows, seconds) if current.overflows is not None else None,
                burn=None if share is None else share / budget,
            )
        )
    return Snapshot(
        scenario=after.scenario,
        seconds=seconds,
        rows=tuple(result),
        slos=prometheus.slos if prometheus else None,
        notes=tuple(after.down) + tuple(notes),
        budget=budget,
    )


def _per_second(count: float | None, seconds: float) -> float | None:
    if seconds <= 0:
        return None
    return (count or 0.0) / seconds


# -- from Prometheus' answers --------------------------------------------------------------------------


def _value(sample: Mapping) -> float | None:
    """An instant vector's value; None for NaN (histogram_quantile of no request) or infinities."""
    try:
        value = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def by_row(result: Sequence[Mapping], scale: float = 1.0, row: RowKey | None = None) -> dict[RowKey, float]:
    """An instant vector by row: ``row`` for all, else by its app and version labels."""
    found = {}
    for sample in result:
        labels = sample.get("metric", {})
        key = row or RowKey(labels.get("app", "?"), labels.get("version", ""))
        value = _value(sample)
        if value is not None:
            found[key] = value * scale
    return found


def percentiles(p50: Mapping[RowKey, float], p99: Mapping[RowKey, float]) -> dict[RowKey, tuple[float | None, float | None]]:
    return {key: (p50.get(key), p99.get(key)) for key in set(p50) | set(p99)}


def window_seconds(window: str) -> float:
    """A Prometheus duration of one unit ("5m", "1d") in seconds, for ordering the windows."""
    match = re.fullmatch(r"(\d+)([smhdw])", window)
    return int(match[1]) * _WINDOW_UNITS[match[2]] if match else math.inf


def slo_states(
    objectives: Sequence[Mapping], burns: Sequence[Mapping], budgets: Sequence[Mapping], alerts: Sequence[Mapping]
) -> tuple[SloState, ...]:
    """Each SLO of ``slo:objective:ratio``, with its burn rates (``slo:burn_rate:ratio_rate<W>``),
    the budget left and its alerts (``ALERTS``), from Prometheus' answers."""
    names = sorted({o.get("metric", {}).get("slo") for o in objectives} - {None})
    burn: dict[str, dict[str, float]] = {name: {} for name in names}
    for sample in burns:
        labels = sample.get("metric", {})
        window = str(labels.get("__name__", "")).rpartition("ratio_rate")[2]
        value = _value(sample)
        if labels.get("slo") in burn and window and value is not None:
            burn[labels["slo"]][window] = value
    left = {b.get("metric", {}).get("slo"): _value(b) for b in budgets}
    states = []
    for name in names:
        mine = [a.get("metric", {}) for a in alerts if a.get("metric", {}).get("slo") == name]

        def described(state: str) -> tuple[str, ...]:
            return tuple(
                sorted(
                    f"{a.get('severity', '?')} {a.get('long_window', '?')}/{a.get('short_window', '?')}"
                    for a in mine
                    if a.get("alertstate") == state
                )
            )

        windows = dict(sorted(burn[name].items(), key=lambda item: window_seconds(item[0])))
        states.append(SloState(name, left.get(name), windows, described("firing"), described("pending")))
    return tuple(states)


# -- drawing -------------------------------------------------------------------------------------------


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _share(value: float | None) -> str:
    if value is None:
        return "-"
    # 99.96% is not 100%: a failure is never rounded away.
    for digits in (1, 2, 3):
        text = f"{value:.{digits}%}"
        if value >= 1 or not text.startswith("100."):
            return text
    return ">99.999%"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _burn(value: float | None) -> Text:
    if value is None:
        return Text("-")
    text = f"{value:.1f}x" if value < 100 else f"{value:.0f}x"
    # Above 1 the budget goes faster than the objective allows.
    return Text(text, style="bold red" if value > 1 else "")


def _pods(pods: tuple[int, int] | None) -> Text:
    if pods is None:
        return Text("-")
    answering, total = pods
    return Text(f"{answering}/{total}", style="" if answering == total else "bold red")


def rows_table(snapshot: Snapshot) -> Table:
    over = f"over the last {snapshot.seconds:.1f} s" if snapshot.seconds > 0 else "(measuring: one reading so far)"
    table = Table(
        title=f"Workloads: rates {over}",
        title_justify="left",
        caption=(
            "burn: the 5xx share over the same seconds, divided by the "
            f"{snapshot.budget:.1%} the availability SLO allows (at 1x the budget lasts exactly the SLO's window)"
        ),
        caption_justify="left",
        expand=False,
    )
    for name, justify in (
        ("WORKLOAD", "left"), ("VERSION", "left"), ("PODS", "right"), ("RPS", "right"), ("SUCCESS", "right"),
        ("P50", "right"), ("P99", "right"), ("RETRIES/S", "right"), ("EJECTED", "right"),
        ("OVERFLOWS/S", "right"), ("BURN", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)
    for row in snapshot.rows:
        workload, version = row.key.label
        table.add_row(
            workload,
            version,
            _pods(row.pods),
            _number(row.rps),
            _share(row.success),
            _ms(row.p50_ms),
            _ms(row.p99_ms),
            _number(row.retries_per_s),
            "-" if row.ejected is None else str(row.ejected),
            _number(row.overflows_per_s),
            _burn(row.burn),
        )
    return table


def slo_table(slos: Sequence[SloState]) -> Table:
    windows = sorted({w for s in slos for w in s.burn}, key=window_seconds)
    table = Table(title="SLOs (Prometheus, slo/rules.yaml): burn rate per window", title_justify="left", expand=False)
    table.add_column("SLO", no_wrap=True)
    table.add_column("BUDGET LEFT", justify="right", no_wrap=True)
    for window in windows:
        table.add_column(window, justify="right", no_wrap=True)
    table.add_column("ALERTS")
    for state in slos:
        alerts = [f"FIRING {a}" for a in state.firing] + [f"pending {a}" for a in state.pending]
        table.add_row(
            state.slo,
            "-" if state.budget_left is None else f"{max(state.budget_left, 0.0):.1%}",
            *(_burn(state.burn.get(w)) for w in windows),
            Text("; ".join(alerts) or "none", style="bold red" if state.firing else "yellow" if state.pending else ""),
        )
    return table


def render(snapshot: Snapshot) -> Group:
    """One frame: the workloads, the SLOs when Prometheus answered, and a line for each thing lacking."""
    parts = [Text(f"meshcalc top: scenario {snapshot.scenario}", style="bold"), rows_table(snapshot)]
    if snapshot.slos:
        parts.append(slo_table(snapshot.slos))
    elif snapshot.slos is not None:
        parts.append(Text("SLOs: Prometheus has no SLO series yet (it loads slo/rules.yaml at start)"))
    parts += [Text(note, style="yellow") for note in snapshot.notes]
    return Group(*parts)
