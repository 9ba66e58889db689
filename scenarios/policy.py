"""The numbers a scenario's expectation judges, read from the Istio YAML it applies.

The calculator's VirtualService (its split route: the one the load takes) and DestinationRule,
after a scenario's files replaced the base ones, parsed by the translator the local mesh uses.
Nothing here is copied from a file by hand: change a timeout in the YAML and the verdict follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from localmesh.loader import Layout, load_mesh
from localmesh.translate.destination_rules import parse_destination_rule
from localmesh.translate.durations import parse_seconds
from localmesh.translate.virtual_services import HTTPRoute, parse_virtual_service

SERVICE = "calculator"
HEADER_ROUTE = "canary-header"  # x-canary: always; every other request takes the split route


def _seconds(text: str | None) -> float | None:
    return None if text is None else float(parse_seconds(text))


def _share(percentage: float | None, default: float = 100.0) -> float:
    return (default if percentage is None else percentage) / 100


@dataclass(frozen=True)
class RoutePolicy:
    """One route of the calculator's VirtualService, as the checks read it."""

    name: str
    timeout_seconds: float | None
    attempts: int  # the first try plus retries.attempts
    per_try_timeout_seconds: float | None
    weights: dict[str, int]  # subset -> weight
    delay_seconds: float | None  # fault.delay.fixedDelay
    delay_share: float
    abort_status: int | None  # fault.abort.httpStatus
    abort_share: float
    mirror_subset: str | None

    def weight_share(self, subset: str) -> float:
        total = sum(self.weights.values())
        return self.weights.get(subset, 0) / total if total else 0.0

    @classmethod
    def of(cls, route: HTTPRoute) -> "RoutePolicy":
        fault, retries = route.fault, route.retries
        delay = fault.delay if fault else None
        abort = fault.abort if fault else None
        weights = {d.destination.subset: (d.weight or (100 if len(route.route) == 1 else 0)) for d in route.route}
        return cls(
            name=route.name,
            timeout_seconds=_seconds(route.timeout),
            attempts=1 + (retries.attempts if retries else 0),
            per_try_timeout_seconds=_seconds(retries.per_try_timeout) if retries else None,
            weights=weights,
            delay_seconds=_seconds(delay.fixed_delay) if delay else None,
            delay_share=_share(delay.percentage if delay.percentage is not None else delay.percent) if delay else 0.0,
            abort_status=abort.http_status if abort else None,
            abort_share=_share(abort.percentage) if abort else 0.0,
            mirror_subset=route.mirrors[0].destination.subset if route.mirrors else None,
        )


@dataclass(frozen=True)
class DestinationPolicy:
    """The calculator's DestinationRule for one subset: its pool and its outlier detection."""

    max_connections: int
    max_pending_requests: int
    consecutive_gateway_errors: int | None
    base_ejection_seconds: float | None


@dataclass(frozen=True)
class CalculatorPolicy:
    split: RoutePolicy
    header: RoutePolicy
    subsets: dict[str, DestinationPolicy]


def calculator_policy(layout: Layout, policy: Sequence[str] = ()) -> CalculatorPolicy:
    """The calculator's policy with ``policy`` (istio/scenarios/ files) applied over istio/."""
    resources = [r for r in load_mesh(layout, policy) if r.name == SERVICE]
    (vs,) = [parse_virtual_service(r) for r in resources if r.kind == "VirtualService"]
    (dr,) = [parse_destination_rule(r) for r in resources if r.kind == "DestinationRule"]
    routes = {route.name: RoutePolicy.of(route) for route in vs.http}
    header = routes.pop(HEADER_ROUTE)
    (split,) = routes.values()
    subsets = {}
    for subset in dr.subsets:
        traffic = dr.policy_for(subset.name)
        pool, outlier = traffic.connection_pool, traffic.outlier_detection
        subsets[subset.name] = DestinationPolicy(
            max_connections=pool.max_connections if pool else 0,
            max_pending_requests=pool.http1_max_pending_requests if pool else 0,
            consecutive_gateway_errors=outlier.consecutive_gateway_errors if outlier else None,
            base_ejection_seconds=_seconds(outlier.base_ejection_time) if outlier else None,
        )
    return CalculatorPolicy(split=split, header=header, subsets=subsets)
