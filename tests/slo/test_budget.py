"""slo.budget: a run's failures in the terms of slo/rules.yaml, and the rules it refuses to guess at."""

import copy

import pytest
import yaml

from slo import budget

DOCUMENT = yaml.safe_load(budget.RULES.read_text())


def test_the_objective_and_thresholds_come_from_the_rules_file():
    objective = budget.objective()
    assert objective.target == 0.999
    assert [(a.severity, a.threshold, a.long_window, a.short_window) for a in objective.alerts] == [
        ("page", 14.4, "1h", "5m"),
        ("page", 6.0, "6h", "30m"),
        ("ticket", 3.0, "1d", "2h"),
        ("ticket", 1.0, "3d", "6h"),
    ]


def test_no_retries_like_failures_page():
    a = budget.assess(requests=1000, failed=200)  # one answer in five a 503
    assert a.availability == pytest.approx(0.8)
    assert a.burn_rate == pytest.approx(200)
    assert a.budget_per_hour_share == pytest.approx(200 / 720)  # the budget gone in 3.6 hours
    assert a.alerts_crossed == ["page 14.4x (1h/5m)", "page 6x (6h/30m)", "ticket 3x (1d/2h)", "ticket 1x (3d/6h)"]


def test_retries_hiding_every_failure_stay_within_budget():
    a = budget.assess(requests=3000, failed=0)
    assert (a.availability, a.burn_rate, a.budget_per_hour_share, a.alerts_crossed) == (1.0, 0.0, 0.0, [])


@pytest.mark.parametrize(
    "failed, crossed",
    [
        (1, []),  # 1 in 1000: exactly the budget's pace crosses nothing
        (2, ["ticket 1x (3d/6h)"]),
        (4, ["ticket 3x (1d/2h)", "ticket 1x (3d/6h)"]),
        (10, ["page 6x (6h/30m)", "ticket 3x (1d/2h)", "ticket 1x (3d/6h)"]),
        (15, ["page 14.4x (1h/5m)", "page 6x (6h/30m)", "ticket 3x (1d/2h)", "ticket 1x (3d/6h)"]),
    ],
)
def test_each_threshold_is_crossed_only_above_it(failed, crossed):
    assert budget.assess(1000, failed).alerts_crossed == crossed


def test_no_request_is_no_verdict_rather_than_a_division_by_zero():
    a = budget.assess(0, 0)
    assert (a.availability, a.burn_rate, a.budget_per_hour_share, a.alerts_crossed) == (None, None, None, [])
    assert a.as_dict()["burn_rate"] is None


@pytest.mark.parametrize("requests, failed", [(10, 11), (-1, 0), (5, -1)])
def test_impossible_counts_are_refused(requests, failed):
    with pytest.raises(ValueError):
        budget.assess(requests, failed)


@pytest.mark.parametrize("requests, failed", [(10.0, 1), ("10", 1), (True, 0)])
def test_counts_are_whole_numbers(requests, failed):
    with pytest.raises(TypeError):
        budget.assess(requests, failed)


def test_the_report_carries_the_fields_the_demo_json_names():
    assert {"availability", "burn_rate", "alerts_crossed"} <= set(budget.assess(100, 1).as_dict())


def broken(change) -> dict:
    document = copy.deepcopy(DOCUMENT)
    change(document)
    return document


def rules_of(document):
    return [r for g in document["groups"] for r in g["rules"] if r.get("labels", {}).get("slo") == budget.AVAILABILITY]


def set_objective(document, expr):
    next(r for r in rules_of(document) if r.get("record") == "slo:objective:ratio")["expr"] = expr


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.clear(), "no groups"),
        (lambda d: set_objective(d, "vector(99.9)"), "not vector"),
        (lambda d: set_objective(d, "0.999"), "not vector"),
        (lambda d: d["groups"][0]["rules"].pop(0), "one slo:objective:ratio"),
        (lambda d: next(r for r in rules_of(d) if "alert" in r).update(expr="slo:burn_rate:ratio_rate1h > 14.4"), "cannot read"),
        (
            lambda d: next(r for r in rules_of(d) if "alert" in r).update(
                expr='slo:burn_rate:ratio_rate1h{slo="calcular-availability"} > 14.4 and slo:burn_rate:ratio_rate5m{slo="calcular-availability"} > 7.2'
            ),
            "cannot read",
        ),
        (lambda d: next(r for r in rules_of(d) if "alert" in r)["labels"].update(severity="critical"), "not page or ticket"),
        (lambda d: [g["rules"].remove(r) for g in d["groups"] for r in list(g["rules"]) if "alert" in r], "no burn-rate alert"),
        (
            lambda d: [g["rules"].remove(r) for g in d["groups"] for r in list(g["rules"])
                       if r.get("record") == "slo:error_budget_remaining:ratio"],
            "budget's window",
        ),
    ],
)
def test_a_rules_file_it_cannot_read_is_refused_with_what_is_wrong(change, message):
    with pytest.raises(budget.RulesError, match=message):
        budget.parse_objective(broken(change))


def test_the_budget_period_is_the_window_the_rules_read():
    assert budget.objective().period_hours == 30 * 24
    # 14 failures in 1000 burn at 14x: an hour of it spends 14/720 of a 30-day budget.
    assert budget.assess(1000, 14).budget_per_hour_share == pytest.approx(14 / 720)
