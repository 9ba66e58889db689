"""The dashboard reads metrics that exist, shows exemplars, and every Envoy stat it reads is exposed."""

from __future__ import annotations

import pytest

from calculator.app import create_app as create_calculator
from calculator.config import CalculatorSettings
from gateway.app import create_app as create_gateway
from manifestcheck import dashboard as dash
from manifestcheck.loading import Dashboard
from manifestcheck.tools import ToolMissing, run_promtool
from servicekit.lifecycle import DrainFlag
from tests.tools import needs_promtool

DASHBOARD = "dashboards/meshcalc.json"
ANNOTATION = "proxy.istio.io/config"


def dashboard_findings(repo_copy):
    (dashboard,) = repo_copy.load().dashboards
    return dash.check_dashboard(dashboard)


def target(document, panel_title, index=0):
    panel = next(p for p in document["panels"] if p.get("title") == panel_title)
    return panel["targets"][index]


def test_a_misspelled_metric_is_reported(repo_copy):
    def change(document):
        t = target(document, "Requests per second")
        t["expr"] = t["expr"].replace("http_server_requests_total", "http_server_request_total")

    repo_copy.edit_json(DASHBOARD, change)
    (finding,) = dashboard_findings(repo_copy)
    assert (finding.check, finding.file) == ("dashboard", DASHBOARD)
    assert finding.resource.startswith("panel 2 ")
    assert finding.field == "panels[1].targets[0].expr"
    assert "http_server_request_total is not a metric" in finding.message


def test_an_unknown_envoy_stat_is_reported(repo_copy):
    def change(document):
        t = target(document, "Retries")
        t["expr"] = t["expr"].replace(
            "envoy_cluster_upstream_rq_retry{", "envoy_cluster_upstream_rq_retries{"
        )

    repo_copy.edit_json(DASHBOARD, change)
    (finding,) = dashboard_findings(repo_copy)
    assert "envoy_cluster_upstream_rq_retries is not an Envoy cluster stat" in finding.message


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


@needs_promtool
def test_every_query_parses_with_promtool(repository):
    (dashboard,) = repository.dashboards
    assert run_promtool(dashboard) == []


@needs_promtool
def test_promtool_reports_the_query_that_does_not_parse(repo_copy):
    def change(document):
        t = target(document, "Upstream outcomes")
        t["expr"] = t["expr"].replace("sum by (status)", "sum by (status")

    repo_copy.edit_json(DASHBOARD, change)
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
