"""EnvoyFilter: the ingress gateway's edge settings, in exactly the shapes istio/ingress uses. Pure.

An EnvoyFilter patches Envoy's configuration beneath Istio's API, so there is no
istiod field mapping to follow: the local mesh applies the two patches it knows
to its ingress Envoy, as istiod applies them to a cluster's, and refuses every
other EnvoyFilter, naming the field it cannot apply.

- ``applyTo: NETWORK_FILTER``, ``operation: MERGE`` of the HTTP connection
  manager's ``typed_config``, with only the fields of ``HCM_MERGE_FIELDS``;
- ``applyTo: HTTP_FILTER``, ``operation: INSERT_BEFORE`` the router, of the
  buffer filter with only ``max_request_bytes``.

Both with ``context: GATEWAY`` and a ``workloadSelector`` of the ingress gateway,
in its namespace.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from localmesh.translate.durations import parse_seconds
from localmesh.translate.envoy_types import HCM_FILTER, HCM_TYPE, ROUTER_FILTER
from localmesh.translate.errors import Fields, Origin
from localmesh.translate.gateways import INGRESS_NAMESPACE, INGRESS_SELECTOR
from localmesh.translate.resources import Resource

BUFFER_FILTER = "envoy.filters.http.buffer"
BUFFER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer"
# The connection manager's fields a MERGE may set: none of them is set by the
# translator, so the merge is a plain assignment, as protobuf's merge would be.
HCM_MERGE_FIELDS = {"request_headers_timeout", "request_timeout", "local_reply_config"}


@dataclass(frozen=True)
class EnvoyFilter:
    """What one EnvoyFilter does to the ingress gateway's HTTP connection manager."""

    name: str
    namespace: str
    origin: Origin
    hcm_fields: Mapping[str, Any] = field(hash=False, default_factory=dict)
    before_router: tuple[Mapping[str, Any], ...] = field(hash=False, default=())

    @property
    def local_replies(self) -> dict[int, str]:
        """The message of each status the local reply mapping rewrites."""
        mappers = (self.hcm_fields.get("local_reply_config") or {}).get("mappers") or []
        return {
            m["filter"]["status_code_filter"]["comparison"]["value"]["default_value"]: m["body"]["inline_string"]
            for m in mappers
        }

    @property
    def request_timeout_seconds(self) -> float | None:
        """The connection manager's ``request_timeout``, in seconds, if this EnvoyFilter sets it."""
        value = self.hcm_fields.get("request_timeout")
        return None if value is None else float(parse_seconds(value))

    @property
    def max_request_bytes(self) -> int | None:
        """The buffer filter's limit, if this EnvoyFilter inserts one."""
        for http_filter in self.before_router:
            if http_filter["name"] == BUFFER_FILTER:
                return http_filter["typed_config"]["max_request_bytes"]
        return None


def _match(match: Fields, sub_filter: str | None) -> None:
    context = match.text("context", required=True)
    if context != "GATEWAY":
        raise match.origin.unsupported(match.at("context"), context, "only the ingress gateway is patched")
    listener = match.mapping("listener")
    chain = listener.mapping("filterChain") if listener else None
    target = chain.mapping("filter") if chain else None
    if target is None:
        raise match.origin.invalid(match.at("listener.filterChain.filter"), "is required")
    name = target.text("name", required=True)
    if name != HCM_FILTER:
        raise match.origin.unsupported(target.at("name"), name, f"only {HCM_FILTER} is patched")
    wanted = target.mapping("subFilter")
    wanted_name = wanted.text("name", required=True) if wanted else None
    if wanted_name != sub_filter:
        raise match.origin.unsupported(target.at("subFilter.name"), wanted_name, f"the patch needs {sub_filter}")
    for fields in (wanted, target, chain, listener, match):
        if fields is not None:
            fields.finish()


def _typed_config(value: Fields, wanted: str, what: str) -> Fields:
    """``value.typed_config``, which must be of type ``wanted``."""
    config = value.mapping("typed_config")
    if config is None:
        raise value.origin.invalid(value.at("typed_config"), "is required")
    kind = config.text("@type", required=True)
    if kind != wanted:
        raise config.origin.unsupported(config.at("@type"), kind, f"{what} needs {wanted}")
    return config


def _merge_hcm(value: Fields) -> dict:
    config = _typed_config(value, HCM_TYPE, "the MERGE")
    merged = {key: copy.deepcopy(config.raw(key)) for key in sorted(HCM_MERGE_FIELDS) if config.has(key)}
    config.finish()
    value.finish()
    return merged


def _buffer_filter(value: Fields) -> dict:
    name = value.text("name", required=True)
    if name != BUFFER_FILTER:
        raise value.origin.unsupported(value.at("name"), name, f"only {BUFFER_FILTER} is inserted")
    config = _typed_config(value, BUFFER_TYPE, "the buffer filter")
    limit = config.integer("max_request_bytes", required=True, minimum=1)
    config.finish()
    value.finish()
    return {"name": BUFFER_FILTER, "typed_config": {"@type": BUFFER_TYPE, "max_request_bytes": limit}}


def parse_envoy_filter(resource: Resource) -> EnvoyFilter:
    origin = resource.origin
    spec = Fields(resource.spec, "spec", origin)
    selector = spec.mapping("workloadSelector")
    labels = selector.string_map("labels") if selector else {}
    if selector:
        selector.finish()
    if labels != INGRESS_SELECTOR or resource.namespace != INGRESS_NAMESPACE:
        raise origin.unsupported(
            "spec.workloadSelector.labels",
            labels,
            f"only EnvoyFilters of the ingress gateway ({INGRESS_SELECTOR} in {INGRESS_NAMESPACE}) are applied",
        )
    hcm_fields: dict[str, Any] = {}
    before_router: list[dict] = []
    for patch_fields in spec.mappings("configPatches"):
        apply_to = patch_fields.text("applyTo", required=True)
        match = patch_fields.mapping("match")
        patch = patch_fields.mapping("patch")
        if match is None or patch is None:
            raise origin.invalid(patch_fields.path, "needs match and patch")
        operation = patch.text("operation", required=True)
        value = patch.mapping("value")
        if value is None:
            raise origin.invalid(patch.at("value"), "is required")
        if (apply_to, operation) == ("NETWORK_FILTER", "MERGE"):
            _match(match, None)
            hcm_fields.update(_merge_hcm(value))
        elif (apply_to, operation) == ("HTTP_FILTER", "INSERT_BEFORE"):
            _match(match, ROUTER_FILTER)
            before_router.append(_buffer_filter(value))
        else:
            raise origin.unsupported(
                patch_fields.path,
                f"applyTo {apply_to} with operation {operation}",
                "only a MERGE of the connection manager and an INSERT_BEFORE of the router are applied",
            )
        patch.finish()
        patch_fields.finish()
    spec.finish()
    return EnvoyFilter(resource.name, resource.namespace, origin, hcm_fields, tuple(before_router))


def apply_envoy_filters(hcm: dict, envoy_filters: Iterable[EnvoyFilter]) -> dict:
    """The connection manager with every EnvoyFilter's patches (ordered by namespace and name: no creation times here)."""
    patched = copy.deepcopy(hcm)
    for envoy_filter in sorted(envoy_filters, key=lambda f: (f.namespace, f.name)):
        for key, value in envoy_filter.hcm_fields.items():
            if key in patched:
                raise envoy_filter.origin.unsupported(f"MERGE of {key}", why="set twice")
            patched[key] = copy.deepcopy(value)
        filters = patched["http_filters"]
        router = next(i for i, f in enumerate(filters) if f["name"] == ROUTER_FILTER)
        patched["http_filters"] = filters[:router] + [dict(f) for f in envoy_filter.before_router] + filters[router:]
    return patched
