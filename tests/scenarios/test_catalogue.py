"""The one catalogue: every name the commands take, what each applies, and numbers that follow the YAML."""

from __future__ import annotations

import shutil

import pytest

from calculator.faults import Fault
from scenarios.catalogue import BASE, catalogue, verdict
from tests.scenarios.test_checks import measured
from tests.support import ROOT

SCENARIOS = catalogue(ROOT)


def checkout_copy(tmp_path):
    """The manifests of the checkout, in a directory a test may edit."""
    for part in ("k8s", "istio"):
        shutil.copytree(ROOT / part, tmp_path / part)
    return tmp_path


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) >= 1, (path, old)
    path.write_text(text.replace(old, new))


def test_the_catalogue_has_every_scenario_the_issue_names():
    assert list(SCENARIOS)[0] == BASE
    assert set(SCENARIOS) >= {
        "base", "canary-90-10", "canary-50-50", "canary-header", "retries", "no-retries",
        "outlier-detection", "circuit-breaker", "fault-delay", "fault-abort", "timeout", "mirror", "kill-replica",
    }


def test_base_restores_everything():
    base = SCENARIOS[BASE]
    assert base.policy == () and not base.faults and base.kill is None


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_scenario_names_policy_files_that_exist_named_for_the_resource_they_change(name):
    for path in SCENARIOS[name].files():
        assert (ROOT / path).is_file(), path
        assert path.rpartition("/")[2].startswith(("virtual-service-", "destination-rule-")), path


def test_every_policy_file_is_used_by_a_scenario_or_the_kind_smoke_test():
    used = {f for s in SCENARIOS.values() for f in s.policy}
    smoke = (ROOT / "scripts" / "kind-smoke.sh").read_text()
    for path in (ROOT / "istio" / "scenarios").glob("*.yaml"):
        assert path.stem in used or f"policy {path.stem}" in smoke, path.name


def test_retries_and_no_retries_differ_only_in_the_retries():
    retries, no_retries = SCENARIOS["retries"], SCENARIOS["no-retries"]
    assert retries.faults == no_retries.faults == {"calculator-v1-0": Fault(errors=0.5)}
    assert no_retries.policy == (*retries.policy, "virtual-service-calculator-no-retries")
    assert retries.load == no_retries.load


def test_the_faults_name_pods_of_the_manifests():
    pods = {"calculator-v1-0", "calculator-v1-1", "calculator-v2-0"}
    for scenario in SCENARIOS.values():
        assert set(scenario.faults) <= pods and (scenario.kill is None or scenario.kill in pods), scenario.name
    assert SCENARIOS["timeout"].describe_faults() == (
        "calculator-v1-0: 100% delayed 4 s; calculator-v1-1: 100% delayed 4 s"
    )


def test_the_expectations_read_their_numbers_from_the_yaml(tmp_path):
    root = checkout_copy(tmp_path)
    scenarios = root / "istio" / "scenarios"
    edit(scenarios / "virtual-service-calculator-fault-delay.yaml", "fixedDelay: 2s", "fixedDelay: 3s")
    edit(scenarios / "virtual-service-calculator-100-0.yaml", "timeout: 3s", "timeout: 5s")
    edit(scenarios / "virtual-service-calculator-50-50.yaml", "subset: v1\n          weight: 50", "subset: v1\n          weight: 75")
    edit(scenarios / "virtual-service-calculator-50-50.yaml", "subset: v2\n          weight: 50", "subset: v2\n          weight: 25")
    edit(root / "istio" / "calculator-destinationrule.yaml", "consecutiveGatewayErrors: 3", "consecutiveGatewayErrors: 4")
    edit(root / "k8s" / "base" / "calculator-v1-horizontalpodautoscaler.yaml", "minReplicas: 2", "minReplicas: 3")
    changed = catalogue(root)

    assert "for 3 s" in changed["fault-delay"].title
    assert "a delayed call takes >= 3 s" in [c.expectation for c in verdict(changed["fault-delay"], measured()).checks]
    # The timeout's replicas are slower than the new budget, and every v1 pod is named, the third too.
    assert changed["timeout"].faults == {f"calculator-v1-{i}": Fault(delay_seconds=6.0) for i in range(3)}
    late = measured(requests=8, answered=8, statuses={504: 8}, sidecar_flags={"UT": 8}, attempts={3: 8},
                    latency={"min": 3.05, "p50": 3.1, "p99": 3.2, "max": 3.2})
    assert "every answer after 5 s and before 5.5 s" in [c.expectation for c in verdict(changed["timeout"], late).checks
                                                         if c.passed is False]
    shares = [c.expectation for c in verdict(changed["canary-50-50"], measured()).checks]
    assert any(e.startswith("v2's share consistent with 25%") for e in shares), shares
    assert "after 4 gateway errors" in changed["outlier-detection"].title


def test_a_policy_file_missing_from_the_checkout_fails_the_catalogue(tmp_path):
    root = checkout_copy(tmp_path)
    (root / "istio" / "scenarios" / "virtual-service-calculator-fault-abort.yaml").unlink()
    with pytest.raises(Exception, match="virtual-service-calculator-fault-abort"):
        catalogue(root)
