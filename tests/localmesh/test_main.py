"""The local mesh's command line: the demo command with the measurement stubbed, and scenario names."""

from __future__ import annotations

import json
import tempfile

import pytest

from localmesh import __main__ as cli
from scenarios import local
from scenarios.measurement import Measurement
from tests.scenarios.test_checks import measured

# -- the command line, with the measurement stubbed -------------------------------------------------


@pytest.fixture
def stub_run(monkeypatch, tmp_path):
    # The command's run directory (kept when a verdict fails) goes under tmp_path.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def stub(result: Measurement):
        monkeypatch.setattr(local, "run_local", lambda scenario, root, run_dir, say: result)

    return stub


def test_demo_exits_1_when_the_expectation_did_not_hold(stub_run, capsys, tmp_path):
    stub_run(measured(statuses={200: 399, 503: 1}))
    assert cli.main(["demo", "base"]) == 1
    captured = capsys.readouterr()
    assert "verdict  FAIL" in captured.out
    kept = list(tmp_path.glob("meshcalc-demo-base-*"))
    assert len(kept) == 1 and f"logs kept in {kept[0]}/logs" in captured.err


def test_demo_json_prints_only_the_report_on_stdout(stub_run, capsys, tmp_path):
    stub_run(measured())
    assert cli.main(["demo", "base", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["passed"] is True
    assert not list(tmp_path.glob("meshcalc-demo-*"))  # removed when the expectation held


def test_an_unknown_scenario_is_refused_with_every_name_and_exits_2(capsys):
    for command in (["demo", "nope"], ["scenario", "nope"], ["scenario", "nope", "--kind"], ["up", "--scenario", "nope"]):
        assert cli.main(command) == 2
        assert "no scenario 'nope'; one of: base, " in capsys.readouterr().err


def test_scenarios_lists_every_name_with_a_line_each(capsys):
    from scenarios.catalogue import catalogue
    from tests.support import ROOT

    assert cli.main(["scenarios"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(catalogue(ROOT))
    assert all(len(line.split(None, 1)) == 2 for line in lines)
