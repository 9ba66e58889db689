"""The kind backend's pure parts: Istio's text access log, and a scenario's pods on a cluster."""

from __future__ import annotations

import os

import pytest

from scenarios.catalogue import catalogue
from scenarios.kind import apply_kind, cluster_pod, parse_text_access_log
from tests.support import ROOT

SCENARIOS = catalogue(ROOT)


def test_istio_text_access_log_on_kind():
    line = (
        '[2026-11-26T03:20:47.686Z] "POST /calcular HTTP/1.1" 503 UO upstream_reset_before_response_started{overflow} '
        '- "-" 45 81 0 - "-" "hey/0.0.1" "3db7e9e6" "calculator" "-" '
        "outbound|80|v2|calculator.meshcalc.svc.cluster.local - 10.96.1.2:80 10.244.0.7:4312 - canary-header"
    )
    entry = parse_text_access_log(line)
    assert (entry["response_code"], entry["response_flags"], entry["duration"]) == (503, "UO", 0)
    assert entry["upstream_cluster"].split("|")[2] == "v2"
    assert parse_text_access_log("2026-11-26T03:20:47Z info envoy started") is None


def test_a_local_pod_name_is_the_deployments_pod_of_that_index_in_name_order():
    pods = ["calculator-v1-7d9f-b2x4q", "calculator-v1-7d9f-a9k2m", "calculator-v2-5c6d-zz1x9", "gateway-6f7b-q1w2e"]
    assert cluster_pod("calculator-v1-0", pods) == "calculator-v1-7d9f-a9k2m"
    assert cluster_pod("calculator-v1-1", pods) == "calculator-v1-7d9f-b2x4q"
    assert cluster_pod("calculator-v2-0", pods) == "calculator-v2-5c6d-zz1x9"
    with pytest.raises(RuntimeError, match="calculator-v1 has 2"):
        cluster_pod("calculator-v1-2", pods)
    with pytest.raises(RuntimeError, match="calculator-v3 has 0"):
        cluster_pod("calculator-v3-0", pods)


def test_a_scenario_on_kind_is_the_kind_sh_commands_a_person_would_type(tmp_path, monkeypatch):
    # Stand-ins for what needs a cluster: scripts/kind.sh records its words; kubectl lists two v1 pods.
    calls = tmp_path / "calls"
    (tmp_path / "scripts").mkdir()
    kind_sh = tmp_path / "scripts" / "kind.sh"
    kind_sh.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    kind_sh.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text("#!/bin/sh\necho calculator-v2-5c6d-zz1x9 calculator-v1-7d9f-b2x4q calculator-v1-7d9f-a9k2m\n")
    kubectl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    said = []

    apply_kind(SCENARIOS["no-retries"], tmp_path, say=said.append)

    assert calls.read_text().splitlines() == [
        "reset",
        "policy destination-rule-calculator-lenient-ejection",
        "policy virtual-service-calculator-no-retries",
        "fault calculator-v1-7d9f-a9k2m --errors 0.5 --status 503",
    ]
    assert said == [f"$ scripts/kind.sh {line}" for line in calls.read_text().splitlines()]
