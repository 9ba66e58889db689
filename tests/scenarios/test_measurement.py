"""What a run measured: the gateway sidecars' access-log entries, counted."""

from __future__ import annotations

from scenarios.measurement import summarize_calls


def test_sidecar_entries_are_counted_by_flag_version_and_attempts():
    entries = [
        {"path": "/calcular", "response_code": 200, "response_flags": "-", "duration": 40, "upstream_attempts": 2,
         "upstream_cluster": "outbound|80|v1|calculator.meshcalc.svc.cluster.local"},
        {"path": "/calcular", "response_code": 503, "response_flags": "UO", "duration": 0, "upstream_attempts": 1,
         "upstream_cluster": "outbound|80|v2|calculator.meshcalc.svc.cluster.local"},
        {"path": "/healthz", "response_code": 200, "response_flags": "-", "duration": 1},
    ]
    assert summarize_calls(entries) == {
        "sidecar_calls": 2,
        "sidecar_flags": {"-": 1, "UO": 1},
        "flag_ms": {"-": {"min": 40, "max": 40}, "UO": {"min": 0, "max": 0}},
        "attempts": {2: 1, 1: 1},
        "versions": {"v1": 1},
    }
