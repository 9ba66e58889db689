"""The SLO's page, end to end: steady load through the local ingress, `scenario no-retries` (a replica
failing half its requests, no retries), and the 14.4x page goes pending, then firing in Prometheus, and
reaches Alertmanager. Real processes: the mesh, Debian's prometheus and prometheus-alertmanager.

Only the test's copy of slo/rules.yaml has shorter `for:` durations; the windows and thresholds are
the shipped ones (a fresh Prometheus computes its 1h window over the minutes it has).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading

import pytest

from localmesh.processes import free_port, wait_until
from localmesh.prometheus import SLO_RULES, alertmanager_binary, prometheus_binary, query_vector
from tests.support import ROOT, get, post_json, running_mesh
from tests.tools import APT, needs

pytestmark = [
    pytest.mark.processes,
    needs("prometheus", prometheus_binary(), APT.format("prometheus")),
    needs("alertmanager", alertmanager_binary(), APT.format("prometheus-alertmanager")),
]
PAGE = 'ALERTS{alertname="CalcularAvailabilityBudgetBurn", severity="page", long_window="1h"}'
SHORT_FOR = "20s"


def short_for(rules: str) -> str:
    return re.sub(r"(?m)^(\s+for:) \S+$", rf"\1 {SHORT_FOR}", rules)


def test_the_shipped_rules_keep_their_for_durations():
    assert re.findall(r"(?m)^\s+for: (\S+)$", SLO_RULES.read_text()) == ["2m", "15m", "1h", "3h"] * 2
    assert set(re.findall(r"(?m)^\s+for: (\S+)$", short_for(SLO_RULES.read_text()))) == {SHORT_FOR}


def dashboard_expression(panel_title: str, legend: str) -> str:
    dashboard = json.loads((ROOT / "dashboards" / "meshcalc.json").read_text())
    (panel,) = [p for p in dashboard["panels"] if p.get("title") == panel_title]
    (target,) = [t for t in panel["targets"] if t.get("legendFormat") == legend]
    return target["expr"]


def cli(run_dir, *arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "localmesh", *arguments],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "LOCALMESH_RUN_DIR": str(run_dir)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_no_retries_pages_and_alertmanager_receives_it(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(short_for(SLO_RULES.read_text()))
    with running_mesh(
        tmp_path / "run",
        prometheus_port=free_port(),
        alertmanager_port=free_port(),
        scrape_interval="1s",
        rule_files=[rules],
    ) as mesh:
        prometheus = mesh.prometheus.url
        stop = threading.Event()
        answers: list[int] = []

        def steady_load():  # about 20 requests a second, bounded
            for _ in range(6000):
                if stop.wait(0.05):
                    return
                status, _, _ = post_json(f"{mesh.ingress_url}/calcular", {"operacion": "sumar", "numero1": 2, "numero2": 3})
                answers.append(status)

        sender = threading.Thread(target=steady_load, daemon=True)
        sender.start()
        try:
            # The ingress, reported as a cluster's ingress gateway, feeds the rules: budget intact, no alert.
            wait_until(
                lambda: query_vector(prometheus, 'slo:sli_error:ratio_rate5m{slo="calcular-availability"} == 0'),
                60, interval=0.5, what="the availability SLI over clean traffic",
            )
            assert not query_vector(prometheus, PAGE)
            assert "Alerts firing: none" in cli(mesh.options.run_dir, "status")

            out = cli(mesh.options.run_dir, "scenario", "no-retries")
            assert "no-retries" in out

            states = set()

            def state(wanted):
                found = {a["metric"]["alertstate"] for a in query_vector(prometheus, PAGE)}
                states.update(found)
                return wanted in found

            wait_until(lambda: state("pending"), 90, interval=0.25, what="the page alert pending")
            wait_until(lambda: state("firing"), 90, interval=0.5, what="the page alert firing")
            assert states == {"pending", "firing"}

            def received():
                status, _, body = get(f"{mesh.alertmanager.url}/api/v2/alerts")
                assert status == 200, body
                return [
                    a for a in json.loads(body)
                    if a["labels"].get("alertname") == "CalcularAvailabilityBudgetBurn"
                    and a["labels"].get("severity") == "page" and a["labels"].get("long_window") == "1h"
                ]

            alert = wait_until(received, 60, interval=0.5, what="the page in Alertmanager")[0]
            assert alert["status"]["state"] == "active"
            assert "make scenario NAME=no-retries" in alert["annotations"]["description"]
            status_lines = cli(mesh.options.run_dir, "status")
            assert "page: CalcularAvailabilityBudgetBurn (calcular-availability, 1h/5m)" in status_lines
            assert re.search(r"SLO calcular-availability: [\d.]+% of the 30-day error budget left", status_lines)
            # Seen, not read: the dashboard's SLO row counts the page, and make top shows it firing.
            pages = dashboard_expression("SLO alerts", "{{slo}}: pages firing")
            firing = {r["metric"]["slo"]: float(r["value"][1]) for r in query_vector(prometheus, pages)}
            assert firing["calcular-availability"] >= 1 and firing["calcular-latency"] == 0, firing
            assert "FIRING page 1h/5m" in cli(mesh.options.run_dir, "top", "--once")
        finally:
            stop.set()
            sender.join(30)
        assert 500 <= max(answers) < 600, "the clients saw the 5xx the alert is about"
