"""Scenario files replace exactly one base resource, and the mesh stays valid with each applied."""

from __future__ import annotations

from manifestcheck.checks import mesh_checks
from manifestcheck.scenarios import check_scenario_shape, check_scenarios_against_base, overlay


def shape_findings(repo_copy):
    repository = repo_copy.load()
    sources = {name: repository.scenario_source(name) for name in repository.scenarios}
    return check_scenario_shape(repository.istio, repository.scenarios, sources)


def against_base(repo_copy):
    repository = repo_copy.load()
    return check_scenarios_against_base(list(repository.mesh), repository.scenarios, mesh_checks(repository))


def test_a_scenario_must_replace_a_base_resource(repo_copy):
    repo_copy.edit(
        "istio/scenarios/virtual-service-calculator-fault-delay.yaml", lambda d: d["metadata"].update(name="calculator-faults")
    )
    (finding,) = shape_findings(repo_copy)
    assert (finding.check, finding.file, finding.field) == (
        "scenario",
        "istio/scenarios/virtual-service-calculator-fault-delay.yaml",
        "metadata.name",
    )
    assert "restoring the base would not remove it" in finding.message


def test_a_scenario_holds_one_resource(repo_copy):
    extra = "\n---\n" + repo_copy.path("istio/scenarios/destination-rule-calculator-circuit-breaker.yaml").read_text()
    with repo_copy.path("istio/scenarios/virtual-service-calculator-fault-abort.yaml").open("a") as handle:
        handle.write(extra)
    findings = shape_findings(repo_copy)
    assert [(f.file, f.field) for f in findings] == [("istio/scenarios/virtual-service-calculator-fault-abort.yaml", "-")]


def test_a_scenario_replaces_only_routes_or_policies(repo_copy):
    repo_copy.write(
        "istio/scenarios/open-door.yaml",
        repo_copy.path("istio/calculator-authorizationpolicy.yaml").read_text(),
    )
    (finding,) = shape_findings(repo_copy)
    assert (finding.file, finding.field) == ("istio/scenarios/open-door.yaml", "kind")


def test_a_scenario_that_breaks_the_mesh_is_reported_with_its_name(repo_copy):
    # Valid on its own, but routes to a subset the base DestinationRule does not define.
    repo_copy.edit(
        "istio/scenarios/virtual-service-calculator-50-50.yaml",
        lambda d: d["spec"]["http"][1]["route"][1]["destination"].update(subset="v3"),
    )
    (finding,) = against_base(repo_copy)
    assert (finding.check, finding.file) == ("subset", "istio/scenarios/virtual-service-calculator-50-50.yaml")
    assert finding.message.endswith("(with scenario virtual-service-calculator-50-50)")


def test_a_destination_rule_scenario_is_checked_against_the_base_routes(repo_copy):
    # Dropping subset v2 breaks the base VirtualService, in another file.
    repo_copy.edit(
        "istio/scenarios/destination-rule-calculator-circuit-breaker.yaml",
        lambda d: d["spec"].update(subsets=d["spec"]["subsets"][:1]),
    )
    findings = against_base(repo_copy)
    assert {f.file for f in findings} == {"istio/calculator-virtualservice.yaml"}
    assert all("(with scenario destination-rule-calculator-circuit-breaker)" in f.message for f in findings)


def test_a_scenario_must_keep_the_fault_tolerance_rules(repo_copy):
    repo_copy.edit(
        "istio/scenarios/destination-rule-calculator-circuit-breaker.yaml",
        lambda d: d["spec"]["trafficPolicy"]["outlierDetection"].update(maxEjectionPercent=10),
    )
    findings = against_base(repo_copy)
    assert findings and {f.check for f in findings} == {"outlier-detection"}
    assert any("cluster v1" in f.message for f in findings)


def test_overlay_replaces_by_kind_namespace_and_name(repository):
    (scenario,) = repository.scenarios["virtual-service-calculator-0-100"]
    merged = overlay(list(repository.mesh), [scenario])
    assert len(merged) == len(repository.mesh)
    assert scenario in merged
