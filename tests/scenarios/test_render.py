"""The verdict table and the JSON report."""

from __future__ import annotations

import json

from scenarios.catalogue import catalogue, verdict
from scenarios.measurement import Measurement
from scenarios.render import render, report
from tests.scenarios.test_checks import measured
from tests.support import ROOT

SCENARIOS = catalogue(ROOT)


def test_the_table_and_the_json_report_say_what_failed():
    scenario = SCENARIOS["base"]
    broken = measured(statuses={200: 390, 503: 10})
    v = verdict(scenario, broken)
    table = render(scenario, broken, v)
    assert "FAIL  every request answered 200: 390 of 400 (10x503)" in table
    assert table.splitlines()[-1].startswith("verdict  FAIL")
    written = json.loads(json.dumps(report(scenario, broken, v)))
    assert written["passed"] is False
    assert Measurement.from_json(written["measurement"]) == broken


def rows(table: str) -> list[str]:
    """The table's lines with the column padding collapsed."""
    return [" ".join(line.split()) for line in table.splitlines()]


def test_the_table_names_the_policy_files_and_the_faults():
    scenario = SCENARIOS["no-retries"]
    table = rows(render(scenario, measured(), verdict(scenario, measured())))
    assert ("policy istio/ + istio/scenarios/destination-rule-calculator-lenient-ejection.yaml + "
            "istio/scenarios/virtual-service-calculator-no-retries.yaml") in table
    assert "faults calculator-v1-0: 50% answered 503" in table
    assert report(scenario, measured(), verdict(scenario, measured()))["faults"] == {
        "calculator-v1-0": {"errors": 0.5, "status": 503, "delay_seconds": 0.0, "delay_share": 1.0, "hang": False}
    }



def test_the_slo_rows_tell_the_retries_pair_in_numbers():
    # no-retries: about a fifth of the answers are calculator-v1-0's 503s; retries: none reach clients.
    without = measured(requests=600, answered=600, statuses={200: 470, 503: 130})
    table = rows(render(SCENARIOS["no-retries"], without, verdict(SCENARIOS["no-retries"], without)))
    assert "SLO availability 78.33% as clients saw it (130 of 600 failed: 5xx or no answer); objective 99.9%" in table
    assert "SLO burn rate 216.7x the budget's pace: an hour of it spends 30.1% of a 30-day error budget" in table
    assert any(line.startswith("SLO alerts crossed page 14.4x (1h/5m), page 6x (6h/30m)") for line in table), table
    hidden = measured(requests=600, answered=600, statuses={200: 600})
    table = rows(render(SCENARIOS["retries"], hidden, verdict(SCENARIOS["retries"], hidden)))
    assert "SLO alerts crossed none: within budget" in table
    slo = report(SCENARIOS["no-retries"], without, verdict(SCENARIOS["no-retries"], without))["slo"]
    assert slo["availability"] == 470 / 600 and round(slo["burn_rate"], 1) == 216.7
    assert slo["alerts_crossed"][:2] == ["page 14.4x (1h/5m)", "page 6x (6h/30m)"]


def test_a_client_failure_is_a_5xx_or_no_answer_never_a_4xx():
    assert measured(requests=400, answered=398, statuses={200: 390, 400: 5, 503: 2, 504: 1}).failed == 5
    table = render(SCENARIOS["base"], measured(requests=8, answered=0, statuses={}), verdict(SCENARIOS["base"], measured()))
    assert "(8 of 8 failed: 5xx or no answer)" in table
