"""What a run's failures cost the availability objective, in the terms of slo/rules.yaml.

Pure: the rules file is read once, when first needed; nothing else touches the outside world.

    >>> a = assess(requests=1000, failed=200)
    >>> a.availability, a.burn_rate, a.alerts_crossed     # doctest: +SKIP
    (0.8, 200.0, ['page 14.4x (1h/5m)', 'page 6x (6h/30m)', 'ticket 3x (1d/2h)', 'ticket 1x (3d/6h)'])

The burn rate is the share of failed requests divided by the share the objective allows (1 - 0.999):
at 1 the 30-day budget lasts exactly 30 days; at 14.4 it lasts 50 hours. A run's burn rate, if it
lasted, crosses an alert's threshold; whether the real alert fires also takes its windows (an hour,
six hours...) and its ``for``, which a short run does not fill.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

RULES = Path(__file__).with_name("rules.yaml")
AVAILABILITY = "calcular-availability"
_BUDGET_WINDOW = re.compile(r"slo:sli_error:ratio_rate(?P<count>\d+)(?P<unit>[dh])\b")
_OBJECTIVE = re.compile(r"^vector\((?P<value>0?\.\d+)\)$")
_ALERT = re.compile(
    r'^slo:burn_rate:ratio_rate(?P<long>\w+)\{slo="(?P<slo>[\w-]+)"\} > (?P<threshold>\d+(?:\.\d+)?) '
    r'and slo:burn_rate:ratio_rate(?P<short>\w+)\{slo="(?P=slo)"\} > (?P=threshold)$'
)


class RulesError(ValueError):
    """The rules file lacks what this module reads, or has it in another shape."""


@dataclass(frozen=True)
class BurnAlert:
    severity: str  # page or ticket
    threshold: float  # burn rate
    long_window: str
    short_window: str

    @property
    def name(self) -> str:
        return f"{self.severity} {self.threshold:g}x ({self.long_window}/{self.short_window})"


@dataclass(frozen=True)
class Objective:
    slo: str
    target: float  # e.g. 0.999
    alerts: tuple[BurnAlert, ...]  # highest threshold first
    period_hours: float  # the budget's window (30 days): the one slo:error_budget_remaining:ratio reads

    @property
    def period_label(self) -> str:
        """The budget's window as people say it: "30-day"."""
        days = self.period_hours / 24
        return f"{days:g}-day" if days == int(days) else f"{self.period_hours:g}-hour"

    @property
    def budget(self) -> float:
        """The share of requests that may fail."""
        return 1 - self.target


@dataclass(frozen=True)
class Assessment:
    requests: int
    failed: int
    availability: float | None  # None: no request, nothing to judge
    burn_rate: float | None
    # The share of the 30-day budget one hour at this burn rate spends (1.0: all of it).
    budget_per_hour_share: float | None
    alerts_crossed: list[str]  # BurnAlert.name of each threshold the burn rate is above
    objective: float

    def as_dict(self) -> dict:
        return {
            "objective": self.objective,
            "requests": self.requests,
            "failed": self.failed,
            "availability": self.availability,
            "burn_rate": self.burn_rate,
            "budget_per_hour_share": self.budget_per_hour_share,
            "alerts_crossed": list(self.alerts_crossed),
        }


def parse_objective(document: dict, slo: str = AVAILABILITY) -> Objective:
    """The objective and its burn-rate alerts, from a rules document (slo/rules.yaml, parsed)."""
    if not isinstance(document, dict) or not isinstance(document.get("groups"), list):
        raise RulesError("not a Prometheus rules file: no groups")
    rules = [r for g in document["groups"] if isinstance(g, dict) for r in g.get("rules") or [] if isinstance(r, dict)]
    mine = [r for r in rules if (r.get("labels") or {}).get("slo") == slo]
    targets = [r for r in mine if r.get("record") == "slo:objective:ratio"]
    if len(targets) != 1:
        raise RulesError(f"{slo}: expected one slo:objective:ratio rule, found {len(targets)}")
    match = _OBJECTIVE.match(str(targets[0].get("expr", "")).strip())
    if not match:
        raise RulesError(f"{slo}: slo:objective:ratio is {targets[0].get('expr')!r}, not vector(<ratio>)")
    target = float(match["value"])
    if not 0 < target < 1:
        raise RulesError(f"{slo}: objective {target} is not between 0 and 1")
    alerts = []
    for rule in (r for r in mine if "alert" in r):
        found = _ALERT.match(" ".join(str(rule.get("expr", "")).split()))
        if not found or found["slo"] != slo:
            raise RulesError(f"{slo}: alert {rule['alert']!r} has an expression this module cannot read: {rule.get('expr')!r}")
        severity = rule["labels"].get("severity")
        if severity not in ("page", "ticket"):
            raise RulesError(f"{slo}: alert {rule['alert']!r} has severity {severity!r}, not page or ticket")
        alerts.append(BurnAlert(severity, float(found["threshold"]), found["long"], found["short"]))
    if not alerts:
        raise RulesError(f"{slo}: no burn-rate alert")
    remaining = [r for r in mine if r.get("record") == "slo:error_budget_remaining:ratio"]
    window = _BUDGET_WINDOW.search(str(remaining[0].get("expr", ""))) if len(remaining) == 1 else None
    if window is None:
        raise RulesError(f"{slo}: no slo:error_budget_remaining:ratio rule reading the budget's window")
    period_hours = int(window["count"]) * (24 if window["unit"] == "d" else 1)
    return Objective(slo, target, tuple(sorted(alerts, key=lambda a: -a.threshold)), period_hours)


@functools.cache
def objective(path: Path = RULES, slo: str = AVAILABILITY) -> Objective:
    """The objective of slo/rules.yaml (read once)."""
    return parse_objective(yaml.safe_load(Path(path).read_text()), slo)


def assess(requests: int, failed: int, slo: Objective | None = None) -> Assessment:
    """What ``failed`` of ``requests`` (as the clients saw them: a 5xx is a failure) cost."""
    slo = slo or objective()
    if isinstance(requests, bool) or isinstance(failed, bool) or not isinstance(requests, int) or not isinstance(failed, int):
        raise TypeError(f"requests and failed are whole numbers, not {requests!r} and {failed!r}")
    if requests < 0 or failed < 0 or failed > requests:
        raise ValueError(f"{failed} failed of {requests} requests: impossible")
    if requests == 0:
        return Assessment(0, 0, None, None, None, [], slo.target)
    share = failed / requests
    burn = share / slo.budget
    return Assessment(
        requests=requests,
        failed=failed,
        availability=1 - share,
        burn_rate=burn,
        budget_per_hour_share=burn / slo.period_hours,
        alerts_crossed=[a.name for a in slo.alerts if burn > a.threshold],
        objective=slo.target,
    )
