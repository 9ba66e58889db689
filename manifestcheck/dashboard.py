"""The Grafana dashboard as code: its queries read metrics that exist, and the sidecars expose them."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from manifestcheck.loading import Dashboard
from manifestcheck.model import (
    Finding,
    Manifest,
    mapping,
    of_kind,
    pod_templates,
    resolve_host,
    sequence,
    services_by_fqdn,
)
from slo.budget import RULES as SLO_RULES

# The apps' metrics (servicekit/telemetry.py, calculator/api.py, gateway/api.py),
# as Prometheus names them; tests/manifestcheck checks this list against the apps.
APP_METRICS = frozenset(
    {
        "http_server_requests_total",
        "http_server_request_duration_seconds_bucket",
        "http_server_request_duration_seconds_sum",
        "http_server_request_duration_seconds_count",
        "calculator_operations_total",
        "gateway_upstream_requests_total",
        "gateway_upstream_request_duration_seconds_bucket",
        "gateway_upstream_request_duration_seconds_sum",
        "gateway_upstream_request_duration_seconds_count",
    }
)
# Istio's standard metrics.
ISTIO_METRICS = frozenset(
    {
        "istio_requests_total",
        *(
            f"istio_{name}_{suffix}"
            for name in ("request_duration_milliseconds", "request_bytes", "response_bytes")
            for suffix in ("bucket", "sum", "count")
        ),
        "istio_tcp_sent_bytes_total",
        "istio_tcp_received_bytes_total",
        "istio_tcp_connections_opened_total",
        "istio_tcp_connections_closed_total",
    }
)
# Envoy cluster stats the dashboard may read: Prometheus suffix of envoy_cluster_* -> Envoy's stat name.
ENVOY_CLUSTER_STATS = {
    "upstream_rq_retry": "upstream_rq_retry",
    "upstream_rq_retry_success": "upstream_rq_retry_success",
    "upstream_rq_retry_limit_exceeded": "upstream_rq_retry_limit_exceeded",
    "upstream_rq_retry_overflow": "upstream_rq_retry_overflow",
    "upstream_rq_pending_overflow": "upstream_rq_pending_overflow",
    "upstream_rq_timeout": "upstream_rq_timeout",
    "upstream_rq_per_try_timeout": "upstream_rq_per_try_timeout",
    "upstream_cx_none_healthy": "upstream_cx_none_healthy",
    "outlier_detection_ejections_active": "outlier_detection.ejections_active",
    "outlier_detection_ejections_enforced_total": "outlier_detection.ejections_enforced_total",
    "outlier_detection_ejections_overflow": "outlier_detection.ejections_overflow",
    "outlier_detection_ejections_enforced_consecutive_5xx": "outlier_detection.ejections_enforced_consecutive_5xx",
    "circuit_breakers_default_rq_pending_open": "circuit_breakers.default.rq_pending_open",
    "circuit_breakers_default_cx_open": "circuit_breakers.default.cx_open",
}
ENVOY_CLUSTER_PREFIX = "envoy_cluster_"
# Prometheus' own series of the rules' alerts, firing and pending.
ALERT_SERIES = frozenset({"ALERTS"})
SLO_RULES_NAME = "slo/rules.yaml"
PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"
# Grafana's interval variables, replaced by a plain duration for offline parsing.
GRAFANA_INTERVALS = ("$__rate_interval", "$__interval", "$__range")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
# A recording rule's level:metric:operations name, with or without a selector: colons appear in no
# function, keyword or label name.
_RECORDED = re.compile(r"(?<![\w:])[a-zA-Z_]\w*:[\w:]*")


@dataclass(frozen=True)
class Query:
    panel_id: Any
    panel_title: str
    ref_id: str
    expr: str
    exemplar: bool
    path: str

    @property
    def resource(self) -> str:
        return f"panel {self.panel_id} {self.panel_title!r}"


def panels(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for index, panel in enumerate(sequence(dashboard.get("panels"))):
        panel = mapping(panel)
        yield f"panels[{index}]", panel
        for inner_index, inner in enumerate(sequence(panel.get("panels"))):
            yield f"panels[{index}].panels[{inner_index}]", mapping(inner)


def queries(dashboard: Mapping[str, Any]) -> list[Query]:
    found = []
    for path, panel in panels(dashboard):
        for index, target in enumerate(sequence(panel.get("targets"))):
            target = mapping(target)
            found.append(
                Query(
                    panel.get("id"),
                    str(panel.get("title", "")),
                    str(target.get("refId", "")),
                    str(target.get("expr", "")),
                    target.get("exemplar") is True,
                    f"{path}.targets[{index}]",
                )
            )
    return found


def variables(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Template variables and their current values."""
    found = {}
    for variable in sequence(mapping(dashboard.get("templating")).get("list")):
        variable = mapping(variable)
        value = mapping(variable.get("current")).get("value")
        found[str(variable.get("name"))] = str(value if value is not None else variable.get("query", ""))
    return found


def substitute_variables(expr: str, values: Mapping[str, str]) -> str:
    """The expression Prometheus receives: Grafana's variables replaced by their values."""
    for interval in GRAFANA_INTERVALS:
        expr = expr.replace(interval, "5m")
    return _VARIABLE.sub(lambda m: values.get(m.group(1) or m.group(2), "x"), expr)


def metric_names(expr: str) -> set[str]:
    """Metric names of an expression: those of its selectors (a name followed by {...} or [...]) and
    every recorded (level:metric:operations) name, bare or not."""
    text = _VARIABLE.sub("x", _STRING.sub('""', expr))
    return set(_SELECTOR.findall(text)) | set(_RECORDED.findall(text))


def recorded_metrics(document: Any) -> frozenset[str]:
    """The series a Prometheus rules document records (its rules' ``record`` names). Pure."""
    return frozenset(
        str(mapping(rule)["record"])
        for group in sequence(mapping(document).get("groups"))
        for rule in sequence(mapping(group).get("rules"))
        if mapping(rule).get("record")
    )


@functools.cache
def slo_metrics(path: Path = SLO_RULES) -> frozenset[str]:
    """What slo/rules.yaml records (the SLO row reads it), read once."""
    return recorded_metrics(yaml.safe_load(Path(path).read_text()))


def known_metrics() -> frozenset[str]:
    """Every series a panel may read: the apps', Istio's, the SLO rules' and the alerts'."""
    return APP_METRICS | ISTIO_METRICS | slo_metrics() | ALERT_SERIES


def check_dashboard(dashboard: Dashboard, known: frozenset[str] | None = None) -> list[Finding]:
    """Unique panel ids, a query per target, known metric names, exemplars on latency panels."""
    known = known_metrics() if known is None else known
    findings = []

    def report(resource: str, field: str, message: str) -> None:
        findings.append(Finding("dashboard", dashboard.source, resource, field, message))

    ids: dict[Any, str] = {}
    for path, panel in panels(dashboard.body):
        panel_id = panel.get("id")
        if panel_id in ids:
            report(f"panel {panel_id}", f"{path}.id", f"also the id of {ids[panel_id]}")
        ids[panel_id] = path
        if panel.get("type") != "row" and not sequence(panel.get("targets")):
            report(f"panel {panel_id} {panel.get('title')!r}", f"{path}.targets", "no query")
    for query in queries(dashboard.body):
        if not query.expr.strip():
            report(query.resource, f"{query.path}.expr", "empty")
            continue
        if not query.ref_id:
            report(query.resource, f"{query.path}.refId", "missing")
        for name in sorted(metric_names(query.expr)):
            if name.startswith(ENVOY_CLUSTER_PREFIX):
                if name[len(ENVOY_CLUSTER_PREFIX) :] not in ENVOY_CLUSTER_STATS:
                    report(
                        query.resource,
                        f"{query.path}.expr",
                        f"{name} is not an Envoy cluster stat this repository exposes",
                    )
            elif name not in known and ":" in name:
                report(query.resource, f"{query.path}.expr", f"{name} is not recorded by {SLO_RULES_NAME}")
            elif name not in known:
                report(
                    query.resource, f"{query.path}.expr", f"{name} is not a metric of the apps or of Istio"
                )
        # The apps' histograms carry trace ids as exemplars (Istio's do not).
        if (
            "histogram_quantile" in query.expr
            and metric_names(query.expr) & APP_METRICS
            and not query.exemplar
        ):
            report(
                query.resource,
                f"{query.path}.exemplar",
                "a latency query of the apps shows exemplars (links to traces): set true",
            )
    return findings


def envoy_stats_used(dashboard: Dashboard) -> dict[str, Query]:
    used = {}
    for query in queries(dashboard.body):
        for name in metric_names(query.expr):
            suffix = name[len(ENVOY_CLUSTER_PREFIX) :]
            if name.startswith(ENVOY_CLUSTER_PREFIX) and suffix in ENVOY_CLUSTER_STATS:
                used.setdefault(suffix, query)
    return used


def stats_matcher_includes(matcher: Mapping[str, Any], stat: str) -> bool:
    """Envoy's inclusion list: prefixes, suffixes, or regexes matching the whole name."""
    return (
        any(stat.startswith(str(p)) for p in sequence(matcher.get("inclusionPrefixes")))
        or any(stat.endswith(str(s)) for s in sequence(matcher.get("inclusionSuffixes")))
        or any(_full_match(str(r), stat) for r in sequence(matcher.get("inclusionRegexps")))
    )


def _full_match(pattern: str, text: str) -> bool:
    try:
        return re.fullmatch(pattern, text) is not None
    except re.error:
        return False


def outbound_clusters(manifests: Sequence[Manifest]) -> list[str]:
    """Envoy cluster names of every DestinationRule subset, as the sidecars name them."""
    services = services_by_fqdn(manifests)
    names = []
    for rule in of_kind(manifests, "DestinationRule"):
        host = resolve_host(str(rule.spec.get("host", "")), rule.namespace)
        service = services.get(host)
        ports = [mapping(p).get("port") for p in sequence(service.spec.get("ports"))] if service else [80]
        for port in ports:
            names.append(f"outbound|{port}||{host}")
            names += [
                f"outbound|{port}|{mapping(s).get('name')}|{host}" for s in sequence(rule.spec.get("subsets"))
            ]
    return names


def check_envoy_stats_exposed(dashboard: Dashboard, manifests: Sequence[Manifest]) -> list[Finding]:
    """The Envoy stats the dashboard reads are in every sidecar's proxyStatsMatcher (Istio exposes few by default)."""
    used = envoy_stats_used(dashboard)
    if not used:
        return []
    cluster_names = outbound_clusters(manifests) or ["outbound|80||service.namespace.svc.cluster.local"]
    findings = []
    field = f"spec.template.metadata.annotations.{PROXY_CONFIG_ANNOTATION}"
    for template in pod_templates(manifests):
        try:
            config = mapping(yaml.safe_load(template.annotations.get(PROXY_CONFIG_ANNOTATION, "") or "{}"))
        except yaml.YAMLError as error:
            findings.append(template.finding("envoy-stats", field, f"not valid YAML: {error}"))
            continue
        matcher = mapping(config.get("proxyStatsMatcher"))
        for suffix, query in sorted(used.items()):
            stat = ENVOY_CLUSTER_STATS[suffix]
            # Istio names cluster stats after alt_stat_name "<cluster>;"; match it with and without.
            names = [f"cluster.{c}{sep}.{stat}" for c in cluster_names for sep in (";", "")]
            missing = [n for n in names if not stats_matcher_includes(matcher, n)]
            if missing:
                findings.append(
                    template.finding(
                        "envoy-stats",
                        f"{field}.proxyStatsMatcher",
                        f"does not include {missing[0]}: {ENVOY_CLUSTER_PREFIX}{suffix} ({query.resource} of "
                        f"{dashboard.source}) stays empty",
                    )
                )
    return findings


def rules_document(dashboard: Dashboard) -> tuple[str, dict[str, Query]]:
    """A Prometheus rules file with one recording rule per query, for `promtool check rules`."""
    values = variables(dashboard.body)
    records: dict[str, Query] = {}
    rules = []
    for index, query in enumerate(queries(dashboard.body)):
        if not query.expr.strip():
            continue
        record = f"dashboard:query_{index}"
        records[record] = query
        rules.append({"record": record, "expr": substitute_variables(query.expr, values)})
    document = {"groups": [{"name": "dashboard", "rules": rules}]}
    return yaml.safe_dump(document, sort_keys=False, width=10_000), records
