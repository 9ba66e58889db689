"""The dashboard reads metrics that exist, shows exemplars, and every Envoy stat it reads is exposed."""

from __future__ import annotations

import pytest
import yaml

from calculator.app import create_app as create_calculator
from calculator.config import CalculatorSettings
from gateway.app import create_app as create_gateway
from manifestcheck import dashboard as dash
from manifestcheck.loading import Dashboard
from manifestcheck.tools import ToolMissing, run_promtool
from servicekit.lifecycle import DrainFlag
from slo.budget import RULES as SLO_RULES
from tests.tools import needs_promtool

DASHBOARD = "dashboards/meshcalc.json"
ANNOTATION = "proxy.istio.io/config"


def dashboard_findings(repo_copy):
    (dashboard,) = repo_copy.load().dashboards
    return dash.check_dashboard(dashboard)


def target(document, panel_title, index=0):
    panel = next(p for p in document["panels"] if p.get("title") == panel_title)
    return panel["targets"][index]


def rewrite_query(repo_copy, panel_title, old, new, index=0):
    """The copy's dashboard with one panel's query changed: ``old`` replaced by ``new``."""

    def change(document):
        t = target(document, panel_title, index)
        assert old in t["expr"], (panel_title, old)
        t["expr"] = t["expr"].replace(old, new)

    repo_copy.edit_json(DASHBOARD, change)


def test_a_misspelled_metric_is_reported(repo_copy):
    rewrite_query(repo_copy, "Requests per second", "http_server_requests_total", "http_server_request_total")
    (finding,) = dashboard_findings(repo_copy)
    assert (finding.check, finding.file) == ("dashboard", DASHBOARD)
    assert finding.resource.startswith("panel 2 ")
    assert finding.field == "panels[1].targets[0].expr"
    assert "http_server_request_total is not a metric" in finding.message


def test_an_unknown_envoy_stat_is_reported(repo_copy):
    rewrite_query(repo_copy, "Retries", "envoy_cluster_upstream_rq_retry{", "envoy_cluster_upstream_rq_retries{")
    (finding,) = dashboard_findings(repo_copy)
    assert "envoy_cluster_upstream_rq_retries is not an Envoy cluster stat" in finding.message


def test_a_misspelled_slo_series_is_reported(repo_copy):
    rewrite_query(repo_copy, "Burn rate by window", "slo:burn_rate:ratio_rate5m", "slo:burn_rate:ratio_rate_5m")
    (finding,) = dashboard_findings(repo_copy)
    assert finding.resource.endswith("'Burn rate by window'")
    assert finding.field.endswith(".targets[0].expr")
    assert finding.message == "slo:burn_rate:ratio_rate_5m is not recorded by slo/rules.yaml"


def test_a_recorded_series_is_checked_without_a_selector_too(repo_copy):
    rewrite_query(repo_copy, "SLO alerts", "0 * slo:objective:ratio", "0 * slo:objectives:ratio")
    (finding,) = dashboard_findings(repo_copy)
    assert "slo:objectives:ratio is not recorded" in finding.message


def test_the_slo_series_known_are_those_the_rules_record(repository):
    (dashboard,) = repository.dashboards
    rules = yaml.safe_load(SLO_RULES.read_text())
    assert dash.slo_metrics() == dash.recorded_metrics(rules) >= {"slo:error_budget_remaining:ratio"}
    # Rules that no longer record the budget: the panel that reads it is reported.
    for group in rules["groups"]:
        group["rules"] = [r for r in group["rules"] if r.get("record") != "slo:error_budget_remaining:ratio"]
    known = dash.APP_METRICS | dash.ISTIO_METRICS | dash.recorded_metrics(rules) | dash.ALERT_SERIES
    (finding,) = dash.check_dashboard(dashboard, known)
    assert finding.resource.endswith("'Error budget left (30 days)'")


def test_recorded_metrics_reads_records_only_and_survives_a_malformed_file():
    document = {"groups": [{"rules": [{"record": "a:b:c", "expr": "1"}, {"alert": "X", "expr": "1"}, "junk"]}, None]}
    assert dash.recorded_metrics(document) == {"a:b:c"}
    assert dash.recorded_metrics("not rules") == frozenset()


def test_the_alerts_series_is_known_and_a_misspelling_is_not(repo_copy):
    rewrite_query(repo_copy, "SLO alerts", "ALERTS{", "ALERT{", index=2)
    (finding,) = dashboard_findings(repo_copy)
    assert finding.field.endswith(".targets[2].expr")
    assert "ALERT is not a metric" in finding.message


def test_app_latency_panels_show_exemplars(repo_copy):
    repo_copy.edit_json(DASHBOARD, lambda d: target(d, "Latency by version", 1).pop("exemplar"))
    (finding,) = dashboard_findings(repo_copy)
    assert finding.field.endswith(".targets[1].exemplar")


def test_panel_ids_are_unique(repo_copy):
    def change(document):
        document["panels"][2]["id"] = document["panels"][1]["id"]

    repo_copy.edit_json(DASHBOARD, change)
    (finding,) = dashboard_findings(repo_copy)
    assert finding.field == "panels[2].id"


def test_a_target_has_a_query(repo_copy):
    repo_copy.edit_json(DASHBOARD, lambda d: target(d, "Circuit breaker overflows").update(expr=" "))
    (finding,) = dashboard_findings(repo_copy)
    assert finding.message == "empty"


def exposure_findings(repo_copy):
    repository = repo_copy.load()
    (dashboard,) = repository.dashboards
    return dash.check_envoy_stats_exposed(dashboard, list(repository.mesh))


def test_the_envoy_stats_read_are_exposed_by_every_sidecar(repo_copy):
    repo_copy.edit(
        "k8s/base/gateway-deployment.yaml",
        lambda d: d["spec"]["template"]["metadata"]["annotations"].pop(ANNOTATION),
    )
    findings = exposure_findings(repo_copy)
    assert findings and {(f.check, f.file) for f in findings} == {
        ("envoy-stats", "k8s/base/gateway-deployment.yaml")
    }
    assert any("envoy_cluster_upstream_rq_pending_overflow" in f.message for f in findings)


def test_a_narrower_stats_matcher_misses_a_stat(repo_copy):
    def narrow(document):
        annotations = document["spec"]["template"]["metadata"]["annotations"]
        annotations[ANNOTATION] = annotations[ANNOTATION].replace("|outlier_detection\\..*", "")

    repo_copy.edit("k8s/base/calculator-v2-deployment.yaml", narrow)
    findings = exposure_findings(repo_copy)
    assert {f.file for f in findings} == {"k8s/base/calculator-v2-deployment.yaml"}
    assert all("outlier_detection" in f.message for f in findings)


def test_stats_matcher_semantics():
    matcher = {
        "inclusionPrefixes": ["cluster.outbound"],
        "inclusionSuffixes": ["_overflow"],
        "inclusionRegexps": [".*retry"],
    }
    assert dash.stats_matcher_includes(
        matcher, "cluster.outbound|80||a.b.svc.cluster.local.upstream_rq_total"
    )
    assert dash.stats_matcher_includes(matcher, "cluster.inbound.upstream_rq_pending_overflow")
    assert dash.stats_matcher_includes(matcher, "x.upstream_rq_retry")
    # A regex matches the whole name, as Envoy's safe_regex does.
    assert not dash.stats_matcher_includes(
        {"inclusionRegexps": ["upstream_rq_retry"]}, "cluster.x.upstream_rq_retry"
    )


def test_the_known_app_metrics_are_the_apps_own(tmp_path):
    """APP_METRICS names exactly what the two apps register (built here with telemetry export off)."""
    environ = {"TELEMETRY_ENABLED": "false"}
    apps = [
        create_calculator(
            CalculatorSettings(results_file=tmp_path / "r.txt"), environ=environ, drain_flag=DrainFlag()
        ),
        create_gateway(environ=environ, drain_flag=DrainFlag()),
    ]
    names = set()
    for app in apps:
        for family in app.extensions["telemetry"].registry.collect():
            if family.type == "counter":
                names.add(f"{family.name}_total")
            elif family.type == "histogram":
                names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
    assert names == dash.APP_METRICS


def test_variables_are_substituted_for_parsing():
    values = {"namespace": "meshcalc"}
    expr = 'rate(x{namespace="$namespace", a="${namespace}"}[$__rate_interval])'
    assert dash.substitute_variables(expr, values) == 'rate(x{namespace="meshcalc", a="meshcalc"}[5m])'


def test_metric_names_ignore_label_values():
    expr = 'sum by (app) (rate(a_total{route="/x{y}"}[5m])) / scalar(sum(b_bucket{le="+Inf"}))'
    assert dash.metric_names(expr) == {"a_total", "b_bucket"}


def test_metric_names_include_bare_recorded_names_but_no_subquery_or_variable():
    expr = 'slo:a:ratio / on(slo) max_over_time(b_total{x="${namespace:raw}", y="c:d"}[5m:1m]) or 0 * slo:e:ratio'
    assert dash.metric_names(expr) == {"slo:a:ratio", "b_total", "slo:e:ratio"}


@needs_promtool
def test_every_query_parses_with_promtool(repository):
    (dashboard,) = repository.dashboards
    assert run_promtool(dashboard) == []


@needs_promtool
def test_promtool_reports_the_query_that_does_not_parse(repo_copy):
    rewrite_query(repo_copy, "Upstream outcomes", "sum by (status, failure)", "sum by (status, failure")
    (dashboard,) = repo_copy.load().dashboards
    (finding,) = run_promtool(dashboard)
    assert (finding.check, finding.file) == ("promql", DASHBOARD)
    assert finding.resource.endswith("'Upstream outcomes'")
    assert "parse error" in finding.message


def test_promtool_missing_is_said(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("manifestcheck.tools.sys.executable", "/nonexistent/python")
    with pytest.raises(ToolMissing, match="apt-get install prometheus"):
        run_promtool(Dashboard("d.json", {"panels": [{"id": 1, "targets": [{"refId": "A", "expr": "up"}]}]}))
