"""slo/rules.yaml under promtool: valid, its unit tests pass, and a broken threshold or window fails them.

The unit tests (rules_test.yaml, evaluated every minute; rules_test_tickets.yaml, every 10 minutes for
the windows of days) feed the rules series of requests through the ingress and say which alerts fire
when: each alert at 1.8 times its threshold fires once its long window's share crosses it, and resolves
when the burn stops (its short window); a fast burn fires all four, the pages first; a slow burn only
the tickets; the budget's pace and below, no traffic, idle series and 4xx answers fire nothing and never
record a 0/0 NaN. The mutation tests below break one alert at a time in a copy of the rules.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.tools import PROMTOOL, needs_promtool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "slo" / "rules.yaml"
HERE = Path(__file__).parent
UNIT_TESTS = [HERE / "rules_test.yaml", HERE / "rules_test_tickets.yaml"]
# The workbook's windows, in order: a broken window is replaced by its neighbour.
WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
ALERT_EXPR = re.compile(
    r'^slo:burn_rate:ratio_rate(?P<long>\w+)\{slo="(?P<slo>[\w-]+)"\} > (?P<threshold>[\d.]+) '
    r'and slo:burn_rate:ratio_rate(?P<short>\w+)\{slo="(?P=slo)"\} > (?P=threshold)$'
)


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(PROMTOOL), *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"] if "alert" in rule]


def alert_id(rule: dict) -> str:
    return f"{rule['labels']['slo']}-{rule['labels']['long_window']}"


@needs_promtool
def test_the_rules_are_valid():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 42 rules found" in result.stdout


@needs_promtool
def test_promtool_rejects_a_broken_rules_file(tmp_path):
    broken = tmp_path / "rules.yaml"
    broken.write_text(RULES.read_text().replace("expr: vector(0.999)", "expr: vector(0.999", 1))
    assert promtool("check", "rules", str(broken)).returncode != 0


@needs_promtool
@pytest.mark.parametrize("unit_tests", UNIT_TESTS, ids=lambda p: p.name)
def test_the_unit_tests_pass(unit_tests):
    result = promtool("test", "rules", unit_tests.name, cwd=unit_tests.parent)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_every_alert_has_the_shape_the_unit_tests_and_slo_budget_read():
    rules = alerts()
    assert len(rules) == 8
    for rule in rules:
        match = ALERT_EXPR.match(rule["expr"])
        assert match, rule["expr"]
        assert (match["long"], match["short"]) == (rule["labels"]["long_window"], rule["labels"]["short_window"])
        assert match["slo"] == rule["labels"]["slo"]
        assert rule["labels"]["severity"] in ("page", "ticket")
        assert {"summary", "description", "dashboard", "scenario"} <= set(rule["annotations"])


def mutations() -> list[tuple[str, str, str]]:
    """(alert, what is broken, the broken expression) for every alert: its threshold doubled and halved,
    its long window replaced by each neighbour, its short window by the longer neighbour (a shorter short
    window only resolves the alert sooner)."""
    found = []
    for rule in alerts():
        match = ALERT_EXPR.match(rule["expr"])
        threshold, long, short = float(match["threshold"]), match["long"], match["short"]

        def rewrite(new_threshold=threshold, new_long=long, new_short=short):
            return (
                rule["expr"]
                .replace(f"ratio_rate{long}{{", f"ratio_rate{new_long}{{")
                .replace(f"ratio_rate{short}{{", f"ratio_rate{new_short}{{")
                .replace(f"> {match['threshold']}", f"> {new_threshold:g}")
            )

        cases = {"threshold x2": rewrite(new_threshold=threshold * 2), "threshold /2": rewrite(new_threshold=threshold / 2)}
        index = WINDOWS.index(long)
        for neighbour in WINDOWS[max(index - 1, 0) : index] + WINDOWS[index + 1 : index + 2]:
            if neighbour != short:
                cases[f"long window {neighbour}"] = rewrite(new_long=neighbour)
        cases[f"short window {WINDOWS[WINDOWS.index(short) + 1]}"] = rewrite(new_short=WINDOWS[WINDOWS.index(short) + 1])
        found += [(alert_id(rule), what, expr) for what, expr in cases.items()]
    return found


def test_the_mutations_cover_every_alert_and_each_threshold_and_window():
    by_alert: dict[str, set[str]] = {}
    for alert, what, _ in mutations():
        by_alert.setdefault(alert, set()).add(what.split(" ")[0] + " " + what.split(" ")[1])
    assert len(by_alert) == 8
    assert all(kinds == {"threshold x2", "threshold /2", "long window", "short window"} for kinds in by_alert.values())


@needs_promtool
@pytest.mark.parametrize("alert, what, expr", mutations(), ids=lambda v: v if len(v) < 40 else "")
def test_a_broken_alert_fails_its_unit_test(tmp_path, alert, what, expr):
    slo, long = alert.rsplit("-", 1)
    original = next(r["expr"] for r in alerts() if alert_id(r) == alert)
    text = RULES.read_text()
    assert text.count(original) == 1
    (tmp_path / "rules.yaml").write_text(text.replace(original, expr))
    # Only this alert's own test group runs (the whole files take about 40 s): it must fail.
    for unit_tests in UNIT_TESTS:
        document = yaml.safe_load(unit_tests.read_text())
        groups = [g for g in document["tests"] if g["name"].startswith(f"{slo}: ") and f" over {long} and " in g["name"]]
        if groups:
            break
    assert len(groups) == 1, f"no unit test of its own for {alert}"
    document.update(rule_files=["rules.yaml"], tests=groups)
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    result = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    # (test_the_unit_tests_pass runs the same group against the real rules: it passes.)
    assert result.returncode != 0, f"{alert} with its {what} ({expr}) still passes its unit test"
