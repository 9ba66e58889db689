"""Istio VirtualService: its http routes, parsed and checked field by field."""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus

from localmesh.translate.durations import duration, seconds
from localmesh.translate.errors import Fields, Origin
from localmesh.translate.kube import resolve_host
from localmesh.translate.resources import Resource

MESH = "mesh"


@dataclass(frozen=True)
class StringMatch:
    kind: str  # "exact", "prefix", "regex" or "present"
    value: str = ""


@dataclass(frozen=True)
class Match:
    name: str = ""
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: tuple[tuple[str, StringMatch], ...] = ()
    without_headers: tuple[tuple[str, StringMatch], ...] = ()
    query_params: tuple[tuple[str, StringMatch], ...] = ()
    ignore_uri_case: bool = False
    port: int = 0
    gateways: tuple[str, ...] = ()
    stat_prefix: str = ""


@dataclass(frozen=True)
class Destination:
    host: str  # FQDN
    subset: str
    port: int | None
    path: str  # where it is written, for error messages


@dataclass(frozen=True)
class HeaderOperations:
    request_set: tuple[tuple[str, str], ...] = ()
    request_add: tuple[tuple[str, str], ...] = ()
    request_remove: tuple[str, ...] = ()
    response_set: tuple[tuple[str, str], ...] = ()
    response_add: tuple[tuple[str, str], ...] = ()
    response_remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouteDestination:
    destination: Destination
    weight: int
    headers: HeaderOperations | None


@dataclass(frozen=True)
class Retries:
    attempts: int
    per_try_timeout: str | None
    retry_on: str | None
    retry_ignore_previous_hosts: bool | None
    backoff: str | None


@dataclass(frozen=True)
class FaultDelay:
    fixed_delay: str
    percentage: float | None
    percent: int  # the deprecated integer field, used when percentage is absent


@dataclass(frozen=True)
class FaultAbort:
    http_status: int
    percentage: float | None


@dataclass(frozen=True)
class Fault:
    delay: FaultDelay | None
    abort: FaultAbort | None


@dataclass(frozen=True)
class Mirror:
    destination: Destination
    percentage: float | None  # None: 100%


@dataclass(frozen=True)
class Rewrite:
    uri: str = ""
    authority: str = ""
    regex_match: str = ""
    regex_rewrite: str = ""


@dataclass(frozen=True)
class CorsPolicy:
    allow_origins: tuple[StringMatch, ...]
    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...]
    max_age: str | None
    allow_credentials: bool | None
    unmatched_preflights: str


@dataclass(frozen=True)
class HTTPRoute:
    path: str
    name: str
    matches: tuple[Match, ...]
    route: tuple[RouteDestination, ...]
    timeout: str | None
    retries: Retries | None
    fault: Fault | None
    mirrors: tuple[Mirror, ...]
    cors: CorsPolicy | None
    headers: HeaderOperations | None
    rewrite: Rewrite | None


@dataclass(frozen=True)
class VirtualService:
    name: str
    namespace: str
    hosts: tuple[str, ...]  # resolved: FQDNs for Service short names
    gateways: tuple[str, ...]  # "namespace/name" or "mesh"
    http: tuple[HTTPRoute, ...]
    export_to: tuple[str, ...]
    origin: Origin = field(compare=False)

    @property
    def applies_to_mesh(self) -> bool:
        return MESH in self.gateways


def parse_export_to(spec: Fields) -> tuple[str, ...]:
    values = spec.strings("exportTo")
    for index, value in enumerate(values):
        if value not in ("*", "."):
            raise spec.origin.unsupported(f"{spec.at('exportTo')}[{index}]", value)
    return tuple(values) or ("*",)


def visible_in(export_to: tuple[str, ...], own_namespace: str, proxy_namespace: str) -> bool:
    """exportTo: '*' everywhere, '.' only to proxies of the resource's own namespace."""
    return "*" in export_to or own_namespace == proxy_namespace


def gateway_key(name: str, namespace: str) -> str:
    """A ``gateways`` entry: "mesh", "name" (the VirtualService's namespace) or "namespace/name"."""
    if name == MESH or "/" in name:
        return name
    return f"{namespace}/{name}"


def _string_match(value: object, path: str, origin: Origin) -> StringMatch:
    match = Fields(value, path, origin)
    kinds = [kind for kind in ("exact", "prefix", "regex") if match.has(kind)]
    if len(kinds) > 1:
        raise origin.invalid(path, f"set only one of exact, prefix, regex, not {kinds}")
    if not kinds:
        match.finish()
        return StringMatch("present")
    kind = kinds[0]
    text = match.text(kind)
    match.finish()
    if kind == "regex" and text == "*":
        # istiod: "*" is no RE2 regex; it means "present" (istio/istio#20629).
        return StringMatch("present")
    return StringMatch(kind, text)


def _named_matches(fields: Fields, key: str) -> tuple[tuple[str, StringMatch], ...]:
    value = fields.raw(key, {})
    if not isinstance(value, dict):
        raise fields.origin.invalid(fields.at(key), "must map names to string matches")
    result = []
    for name, match in value.items():
        path = f"{fields.at(key)}.{name}"
        if not isinstance(name, str) or name != name.lower():
            raise fields.origin.invalid(path, "header and parameter names must be lower case")
        if name.startswith("@request.auth.claims"):
            raise fields.origin.unsupported(path)  # JWT claims need RequestAuthentication
        result.append((name, _string_match(match or {}, path, fields.origin)))
    return tuple(result)


def _match(match: Fields, vs_namespace: str) -> Match:
    def optional(key: str) -> StringMatch | None:
        value = match.raw(key)
        return None if value is None else _string_match(value, match.at(key), match.origin)

    result = Match(
        name=match.text("name", ""),
        uri=optional("uri"),
        scheme=optional("scheme"),
        method=optional("method"),
        authority=optional("authority"),
        headers=_named_matches(match, "headers"),
        without_headers=_named_matches(match, "withoutHeaders"),
        query_params=_named_matches(match, "queryParams"),
        ignore_uri_case=match.flag("ignoreUriCase", False),
        port=match.integer("port", 0),
        gateways=tuple(gateway_key(g, vs_namespace) for g in match.strings("gateways")),
        stat_prefix=match.text("statPrefix", ""),
    )
    match.finish()
    return result


def _destination(value: object, path: str, origin: Origin, namespace: str) -> Destination:
    destination = Fields(value, path, origin)
    host = destination.text("host", required=True)
    subset = destination.text("subset", "")
    port = None
    selector = destination.mapping("port")
    if selector is not None:
        port = selector.integer("number", required=True, minimum=1)
        selector.finish()
    destination.finish()
    return Destination(resolve_host(host, namespace), subset, port, path)


def _header_operations(headers: Fields | None) -> HeaderOperations | None:
    if headers is None:
        return None
    values = {}
    for direction in ("request", "response"):
        operations = headers.mapping(direction)
        if operations is None:
            continue
        values[f"{direction}_set"] = tuple(sorted(operations.string_map("set").items()))
        values[f"{direction}_add"] = tuple(sorted(operations.string_map("add").items()))
        values[f"{direction}_remove"] = tuple(operations.strings("remove"))
        operations.finish()
    headers.finish()
    return HeaderOperations(**values)


def _percentage(fields: Fields, key: str) -> float | None:
    percentage = fields.mapping(key)
    if percentage is None:
        return None
    value = percentage.number("value")
    percentage.finish()
    value = 0.0 if value is None else value
    if not 0 <= value <= 100:
        raise fields.origin.invalid(percentage.at("value"), "must be a percentage, 0 to 100")
    return value


def _retries(retries: Fields) -> Retries:
    if retries.flag("retryRemoteLocalities", False):
        raise retries.origin.unsupported(retries.at("retryRemoteLocalities"), True)
    per_try = retries.raw("perTryTimeout")
    backoff = retries.raw("backoff")
    result = Retries(
        attempts=retries.integer("attempts", 0),
        per_try_timeout=None if per_try is None else duration(per_try, retries.at("perTryTimeout"), retries.origin),
        retry_on=retries.text("retryOn"),
        retry_ignore_previous_hosts=retries.flag("retryIgnorePreviousHosts"),
        backoff=None if backoff is None else duration(backoff, retries.at("backoff"), retries.origin),
    )
    retries.finish()
    return result


def _fault(fault: Fields) -> Fault:
    delay = abort = None
    delay_fields = fault.mapping("delay")
    if delay_fields is not None:
        fixed = delay_fields.raw("fixedDelay")
        percentage = _percentage(delay_fields, "percentage")
        percent = delay_fields.integer("percent", 0)
        # exponentialDelay is refused here: istiod does not implement it either (it logs and drops it).
        delay_fields.finish()
        if fixed is None:
            raise fault.origin.invalid(delay_fields.at("fixedDelay"), "is required")
        delay = FaultDelay(duration(fixed, delay_fields.at("fixedDelay"), fault.origin), percentage, percent)
    abort_fields = fault.mapping("abort")
    if abort_fields is not None:
        status = abort_fields.integer("httpStatus")
        percentage = _percentage(abort_fields, "percentage")
        abort_fields.finish()  # grpcStatus and http2Error are refused here
        if status is None:
            raise fault.origin.invalid(abort_fields.at("httpStatus"), "is required")
        if not 200 <= status < 600:
            raise fault.origin.invalid(abort_fields.at("httpStatus"), f"{status} is not an HTTP status")
        abort = FaultAbort(status, percentage)
    fault.finish()
    return Fault(delay, abort)


def _rewrite(rewrite: Fields) -> Rewrite:
    regex = rewrite.mapping("uriRegexRewrite")
    regex_match = regex_rewrite = ""
    if regex is not None:
        regex_match = regex.text("match", required=True)
        regex_rewrite = regex.text("rewrite", "")
        regex.finish()
    result = Rewrite(rewrite.text("uri", ""), rewrite.text("authority", ""), regex_match, regex_rewrite)
    if result.uri and regex is not None:
        raise rewrite.origin.invalid(rewrite.path, "set uri or uriRegexRewrite, not both")
    rewrite.finish()
    return result


def _cors(cors: Fields) -> CorsPolicy:
    max_age = cors.raw("maxAge")
    origins = tuple(_string_match(value, path, cors.origin) for path, value in cors.items("allowOrigins"))
    unmatched = cors.text("unmatchedPreflights", "UNSPECIFIED")
    if unmatched not in ("UNSPECIFIED", "FORWARD", "IGNORE"):
        raise cors.origin.invalid(cors.at("unmatchedPreflights"), f"unknown value {unmatched!r}")
    result = CorsPolicy(
        allow_origins=origins,
        allow_methods=tuple(cors.strings("allowMethods")),
        allow_headers=tuple(cors.strings("allowHeaders")),
        expose_headers=tuple(cors.strings("exposeHeaders")),
        max_age=None if max_age is None else str(int(seconds(max_age, cors.at("maxAge"), cors.origin))),
        allow_credentials=cors.flag("allowCredentials"),
        unmatched_preflights=unmatched,
    )
    cors.finish()
    return result


def _http_route(http: Fields, namespace: str) -> HTTPRoute:
    origin = http.origin
    route = []
    for destination in http.mappings("route"):
        target = _destination(destination.raw("destination"), destination.at("destination"), origin, namespace)
        weight = destination.integer("weight", 0)
        route.append(RouteDestination(target, weight, _header_operations(destination.mapping("headers"))))
        destination.finish()
    mirrors = []
    if http.has("mirror"):
        mirrors.append(
            Mirror(
                _destination(http.raw("mirror"), http.at("mirror"), origin, namespace),
                _percentage(http, "mirrorPercentage"),
            )
        )
    elif http.has("mirrorPercentage"):
        raise origin.invalid(http.at("mirrorPercentage"), "needs mirror")
    for mirror in http.mappings("mirrors"):
        mirrors.append(
            Mirror(
                _destination(mirror.raw("destination"), mirror.at("destination"), origin, namespace),
                _percentage(mirror, "percentage"),
            )
        )
        mirror.finish()
    timeout = http.raw("timeout")
    retries = http.mapping("retries")
    fault = http.mapping("fault")
    cors = http.mapping("corsPolicy")
    rewrite = http.mapping("rewrite")
    result = HTTPRoute(
        path=http.path,
        name=http.text("name", ""),
        matches=tuple(_match(match, namespace) for match in http.mappings("match")),
        route=tuple(route),
        timeout=None if timeout is None else duration(timeout, http.at("timeout"), origin),
        retries=None if retries is None else _retries(retries),
        fault=None if fault is None else _fault(fault),
        mirrors=tuple(mirrors),
        cors=None if cors is None else _cors(cors),
        headers=_header_operations(http.mapping("headers")),
        rewrite=None if rewrite is None else _rewrite(rewrite),
    )
    http.finish()  # redirect, directResponse, delegate, mirrorPercent... are refused here
    if not route:
        raise origin.invalid(http.at("route"), "is required (redirect, directResponse and delegate are not supported)")
    if len(route) > 1 and not any(d.weight > 0 for d in route):
        raise origin.invalid(http.at("route"), "the weights of a split must add up to more than 0")
    return result


def parse_virtual_service(resource: Resource) -> VirtualService:
    origin = resource.origin
    spec = Fields(resource.spec, "spec", origin)
    hosts = spec.strings("hosts")
    if not hosts:
        raise origin.invalid("spec.hosts", "a VirtualService needs at least one host")
    gateways = tuple(gateway_key(g, resource.namespace) for g in spec.strings("gateways")) or (MESH,)
    http = tuple(_http_route(route, resource.namespace) for route in spec.mappings("http"))
    export_to = parse_export_to(spec)
    spec.finish()  # tcp, tls, delegate-only VirtualServices are refused here
    return VirtualService(
        resource.name,
        resource.namespace,
        tuple(resolve_host(h, resource.namespace) for h in hosts),
        gateways,
        http,
        export_to,
        origin,
    )


def retry_on_tokens(retry_on: str) -> tuple[str, list[int]]:
    """istiod's parseRetryOn: HTTP status codes go to retriable_status_codes, the rest stays in retry_on."""
    conditions, codes = [], []
    for part in (token.strip() for token in retry_on.split(",")):
        if not part:
            continue
        if part.isdigit() and int(part) in HTTPStatus._value2member_map_:
            codes.append(int(part))
        else:
            conditions.append(part)
    return ",".join(conditions), codes
