"""VirtualService http routes to Envoy routes, as istiod's route.go builds them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from localmesh.translate.errors import Origin
from localmesh.translate.manifests import Manifests
from localmesh.translate.virtual_services import (
    CorsPolicy,
    Destination,
    Fault,
    HeaderOperations,
    HTTPRoute,
    Match,
    Retries,
    StringMatch,
    VirtualService,
    retry_on_tokens,
)

FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"
FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
CORS_POLICY_TYPE = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
PREVIOUS_HOSTS_TYPE = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
# istiod's default (retry.DefaultPolicy, with 503 excluded from the default retriable codes).
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
NO_TIMEOUT = "0s"  # istiod always writes it: Envoy's own default route timeout would be 15s


def cluster_name(port: int, subset: str, host: str) -> str:
    """istiod's BuildSubsetKey: outbound|PORT|SUBSET|FQDN."""
    return f"outbound|{port}|{subset}|{host}"


@dataclass(frozen=True)
class RouteContext:
    """What a proxy's routes depend on besides the VirtualService."""

    manifests: Manifests
    listen_port: int  # the port the client called (Service port at a sidecar, server port at the gateway)
    gateways: frozenset[str]  # "mesh" for a sidecar, "namespace/name" of the Gateways for the ingress
    has_cluster: Callable[[str], bool]
    proxy: str  # for error messages: "the ingress gateway", "the sidecar of meshcalc/gateway"


def destination_cluster(destination: Destination, context: RouteContext, origin: Origin) -> str:
    """istiod's GetDestinationCluster.

    The port is destination.port, else the Service's only port, else the listener's.
    """
    service = context.manifests.service(destination, origin)
    port = destination.port
    if port is None:
        port = service.ports[0].port if len(service.ports) == 1 else context.listen_port
    if service.port(port) is None:
        raise origin.invalid(
            f"{destination.path}.port", f"Service {service.fqdn} has several ports and none is {port}; set port.number"
        )
    name = cluster_name(port, destination.subset, destination.host)
    if not context.has_cluster(name):
        # A subset whose DestinationRule exportTo hides from this proxy: istiod would answer 503 NC.
        raise origin.invalid(
            f"{destination.path}.subset",
            f"subset {destination.subset!r} of {destination.host} is not visible to {context.proxy}",
        )
    return name


# -- match ------------------------------------------------------------------------------------------


def string_matcher(match: StringMatch) -> dict:
    if match.kind == "regex":
        return {"safe_regex": {"regex": match.value}}
    return {match.kind: match.value}


def header_matcher(name: str, match: StringMatch) -> dict:
    if match.kind == "present":
        return {"name": name, "present_match": True}
    return {"name": name, "string_match": string_matcher(match)}


def route_match(match: Match | None) -> dict:
    """istiod's TranslateRouteMatch: fields inside one match entry are AND'ed."""
    if match is None:
        return {"prefix": "/"}
    out: dict = {}
    if match.uri is None or match.uri.kind == "present":
        out["prefix"] = "/"
    elif match.uri.kind == "exact":
        out["path"] = match.uri.value
    elif match.uri.kind == "prefix":
        out["prefix"] = match.uri.value
    else:
        out["safe_regex"] = {"regex": match.uri.value}
    headers = [header_matcher(name, value) for name, value in match.headers]
    for name, value in match.without_headers:
        matcher = {**header_matcher(name, value), "invert_match": True}
        if value.kind != "present":
            # A missing header is "not equal" too (treat_missing_header_as_empty conflicts with present_match).
            matcher["treat_missing_header_as_empty"] = True
        headers.append(matcher)
    headers.sort(key=lambda matcher: matcher["name"])
    out["case_sensitive"] = not match.ignore_uri_case
    for name, value in ((":method", match.method), (":authority", match.authority), (":scheme", match.scheme)):
        if value is not None:
            headers.append(header_matcher(name, value))
    if headers:
        out["headers"] = headers
    query = []
    for name, value in match.query_params:
        if value.kind == "present":
            query.append({"name": name, "present_match": True})
        else:
            query.append({"name": name, "string_match": string_matcher(value)})
    if query:
        out["query_parameters"] = query
    return out


def is_catch_all(route: dict) -> bool:
    """istiod's IsCatchAllRoute: prefix "/" or regex ".*" with no header or query matcher."""
    match = route["match"]
    catch_all = match.get("prefix") == "/" or match.get("safe_regex", {}).get("regex") == ".*"
    return catch_all and not match.get("headers") and not match.get("query_parameters")


# -- actions ------------------------------------------------------------------------------------------


def _is_internal(header: str) -> bool:
    return header.startswith(":") or header.lower() == "host"


def _is_authority(header: str) -> bool:
    return header.lower() in (":authority", "host")


def header_operations(operations: HeaderOperations) -> tuple[dict, str]:
    """istiod's TranslateHeadersOperations: (route fields, authority to rewrite or "")."""
    out: dict = {}
    authority = ""
    for direction in ("request", "response"):
        to_add = []
        direction_authority = {}
        for kind, action in (("set", "OVERWRITE_IF_EXISTS_OR_ADD"), ("add", "APPEND_IF_EXISTS_OR_ADD")):
            for key, value in getattr(operations, f"{direction}_{kind}"):
                if _is_authority(key):
                    direction_authority[kind] = value
                if _is_internal(key):
                    continue
                to_add.append({"header": {"key": key, "value": value}, "append_action": action})
        if direction == "request":
            authority = direction_authority.get("set") or direction_authority.get("add", "")
        to_remove = [key for key in getattr(operations, f"{direction}_remove") if not _is_internal(key)]
        if to_add:
            out[f"{direction}_headers_to_add"] = to_add
        if to_remove:
            out[f"{direction}_headers_to_remove"] = to_remove
    return out, authority


def _merge_header_fields(target: dict, fields: dict) -> None:
    for key, values in fields.items():
        target[key] = target.get(key, []) + values


def fractional_percent(value: float) -> dict:
    """istiod's translatePercentToFractionalPercent: value*10000 per million, truncated as Go's uint32() does."""
    return {"numerator": int(value * 10000), "denominator": "MILLION"}


def retry_policy(retries: Retries | None) -> dict | None:
    """istiod's retry.ConvertPolicy."""
    policy = {
        "retry_on": DEFAULT_RETRY_ON,
        "num_retries": 2,
        # Retry on another host than the ones tried (istiod's xdsfilters.RetryPreviousHosts).
        "retry_host_predicate": [
            {"name": "envoy.retry_host_predicates.previous_hosts", "typed_config": {"@type": PREVIOUS_HOSTS_TYPE}}
        ],
        "host_selection_retry_max_attempts": 5,
    }
    if retries is None:
        return policy
    if retries.attempts <= 0:
        # attempts 0 (or retries without attempts) disables retries altogether.
        return None
    policy["num_retries"] = retries.attempts
    if retries.retry_on:
        conditions, codes = retry_on_tokens(retries.retry_on)
        if codes and "retriable-status-codes" not in conditions:
            conditions = f"{conditions},retriable-status-codes" if conditions else "retriable-status-codes"
        policy["retry_on"] = conditions
        if codes:
            policy["retriable_status_codes"] = codes
    if retries.per_try_timeout is not None:
        policy["per_try_timeout"] = retries.per_try_timeout
    if retries.retry_ignore_previous_hosts is not None and not retries.retry_ignore_previous_hosts:
        del policy["retry_host_predicate"]
    if retries.backoff is not None:
        policy["retry_back_off"] = {"base_interval": retries.backoff}
    return policy


def fault_config(fault: Fault) -> dict | None:
    """istiod's TranslateFault: HTTPFault for the fault filter of this route."""
    out: dict = {"@type": FAULT_TYPE}
    if fault.delay is not None:
        if fault.delay.percentage is not None:
            percentage = fractional_percent(fault.delay.percentage)
        else:
            # istiod falls back to the deprecated integer percent: 0 (no delay) when absent.
            percentage = {"numerator": fault.delay.percent, "denominator": "HUNDRED"}
        out["delay"] = {"fixed_delay": fault.delay.fixed_delay, "percentage": percentage}
    if fault.abort is not None:
        out["abort"] = {"http_status": fault.abort.http_status}
        if fault.abort.percentage is not None:
            # Absent percentage: Envoy's default of 0, so no abort.
            out["abort"]["percentage"] = fractional_percent(fault.abort.percentage)
    return out if len(out) > 1 else None


def cors_config(cors: CorsPolicy) -> dict:
    """istiod's TranslateCORSPolicy."""
    out: dict = {
        "@type": CORS_POLICY_TYPE,
        "forward_not_matching_preflights": cors.unmatched_preflights != "IGNORE",
        "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
    }
    if cors.allow_origins:
        out["allow_origin_string_match"] = [string_matcher(origin) for origin in cors.allow_origins]
    for key, values in (
        ("allow_methods", cors.allow_methods),
        ("allow_headers", cors.allow_headers),
        ("expose_headers", cors.expose_headers),
    ):
        if values:
            out[key] = ",".join(values)
    if cors.max_age is not None:
        out["max_age"] = cors.max_age
    if cors.allow_credentials is not None:
        out["allow_credentials"] = cors.allow_credentials
    return out


def mirror_policy(cluster: str, percentage: float | None) -> dict | None:
    """istiod's MirrorPercent: absent -> 100%, 0 -> no mirror."""
    if percentage is None:
        fraction = {"numerator": 100, "denominator": "HUNDRED"}
    elif percentage > 0:
        fraction = fractional_percent(percentage)
    else:
        return None
    return {
        "cluster": cluster,
        "runtime_fraction": {"default_value": fraction},
        "trace_sampled": False,
        "disable_shadow_host_suffix_append": True,
    }


def _operation(route: dict, vs_name: str, listen_port: int) -> str:
    """istiod's GetRouteOperation: the trace span name of the route."""
    match = route["match"]
    if "path" in match:
        path = match["path"]
    elif "safe_regex" in match:
        path = match["safe_regex"]["regex"]
    else:
        path = match.get("prefix", "/") + "*"
    cluster = route.get("route", {}).get("cluster")
    if cluster:
        _, port, _, host = cluster.split("|")
        return f"{host}:{port}{path}"
    return f"{vs_name}:{listen_port}{path}"


def _gateway_selected(match: Match | None, context: RouteContext) -> bool:
    """istiod's sourceMatchHTTP / TranslateRoute guards: match.port and match.gateways."""
    if match is None:
        return True
    if match.port and match.port != context.listen_port:
        return False
    return not match.gateways or any(g in context.gateways for g in match.gateways)


def translate_route(vs: VirtualService, http: HTTPRoute, match: Match | None, context: RouteContext) -> dict | None:
    """istiod's TranslateRoute for one match entry (None: the rule has no match)."""
    if not _gateway_selected(match, context):
        return None
    origin = vs.origin
    out: dict = {"match": route_match(match)}
    name = http.name + (f".{match.name}" if match is not None and match.name else "")
    if name:
        out["name"] = name
    if match is not None and match.stat_prefix:
        out["stat_prefix"] = match.stat_prefix
    authority = ""
    if http.headers is not None:
        fields, authority = header_operations(http.headers)
        out.update(fields)

    action: dict = {"timeout": http.timeout or NO_TIMEOUT}
    if http.rewrite is not None:
        if http.rewrite.regex_match:
            action["regex_rewrite"] = {
                "pattern": {"regex": http.rewrite.regex_match},
                "substitution": http.rewrite.regex_rewrite,
            }
        elif http.rewrite.uri:
            action["prefix_rewrite"] = http.rewrite.uri
        authority = http.rewrite.authority or authority
    if authority:
        action["host_rewrite_literal"] = authority
    mirrors = []
    for mirror in http.mirrors:
        policy = mirror_policy(destination_cluster(mirror.destination, context, origin), mirror.percentage)
        if policy is not None:
            mirrors.append(policy)
    if mirrors:
        action["request_mirror_policies"] = mirrors

    if len(http.route) == 1:
        # A single destination: its weight is ignored.
        destination = http.route[0]
        action["cluster"] = destination_cluster(destination.destination, context, origin)
        if destination.headers is not None:
            fields, destination_authority = header_operations(destination.headers)
            _merge_header_fields(out, fields)
            if destination_authority and "host_rewrite_literal" not in action:
                action["host_rewrite_literal"] = destination_authority
    else:
        clusters = []
        for destination in http.route:
            if destination.weight == 0:
                continue  # istiod drops weight-0 entries of a split
            weighted = {
                "name": destination_cluster(destination.destination, context, origin),
                "weight": destination.weight,
            }
            if destination.headers is not None:
                fields, destination_authority = header_operations(destination.headers)
                weighted.update(fields)
                if destination_authority:
                    weighted["host_rewrite_literal"] = destination_authority
            clusters.append(weighted)
        # total_weight is never written: Envoy sums the weights.
        action["weighted_clusters"] = {"clusters": clusters}
    policy = retry_policy(http.retries)
    if policy is not None:
        action["retry_policy"] = policy
    out["route"] = action
    out["decorator"] = {"operation": _operation(out, vs.name, context.listen_port)}

    per_filter = {}
    if http.fault is not None:
        fault = fault_config(http.fault)
        if fault is not None:
            per_filter[FAULT_FILTER] = fault
    if http.cors is not None:
        per_filter[CORS_FILTER] = cors_config(http.cors)
    if per_filter:
        out["typed_per_filter_config"] = per_filter
    return out


def virtual_service_routes(vs: VirtualService, context: RouteContext) -> list[dict]:
    """istiod's BuildHTTPRoutesForVirtualService: one route per match (OR), nothing after a catch-all."""
    routes = []
    for http in vs.http:
        catch_all = False
        if not http.matches:
            route = translate_route(vs, http, None, context)
            if route is not None:
                routes.append(route)
            catch_all = True
        else:
            for match in http.matches:
                route = translate_route(vs, http, match, context)
                if route is None:
                    continue
                routes.append(route)
                if is_catch_all(route):
                    catch_all = True
                    break
        if catch_all:
            break
    return routes


def default_route(cluster: str, host: str, port: int) -> dict:
    """istiod's BuildDefaultHTTPOutboundRoute: a Service without VirtualService."""
    return {
        "name": "default",
        "match": {"prefix": "/"},
        "route": {"cluster": cluster, "timeout": NO_TIMEOUT, "retry_policy": retry_policy(None)},
        "decorator": {"operation": f"{host}:{port}/*"},
    }
