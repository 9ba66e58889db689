"""The benchmark's plumbing, so that `make bench` cannot rot: no test here asserts a speed."""

import dataclasses
import json
import shutil

import pytest

from bench import report
from bench.loadgen import parse_summary, result_of, wrk_command
from bench.run import QUICK, rotated, run, spread
from bench.topology import ROOT, one_replica_manifests
from localmesh.loader import Layout, load_mesh
from localmesh.translate import read_manifests
from tests.tools import APT, needs

WRK_LINE = (
    'Running 1s test\nBENCH {"requests": 200, "duration_us": 1000000, "non2xx": 1, "socket_errors": 0, '
    '"timeouts": 0, "p50_us": 1500, "p90_us": 2000, "p99_us": 4000, "max_us": 9000, "mean_us": 1600.5}\n'
)


def test_wrk_summary_line_is_parsed_to_milliseconds_and_a_rate():
    result = result_of(parse_summary(WRK_LINE), target_rate=250)
    assert (result.rps, result.p50_ms, result.p99_ms, result.errors) == (200, 1.5, 4.0, 1)
    assert result.rate_shortfall == pytest.approx(0.2)


def test_wrk_runs_one_thread_with_the_lua_script():
    command = wrk_command("http://127.0.0.1:1/calcular", 2.4, 8)
    assert command[:3] == ["wrk", "-t1", "-c8"] and "-d2s" in command and command[-1].endswith("/calcular")


def test_paths_take_turns_in_a_rotating_order():
    assert [rotated(("a", "b", "c"), i) for i in range(3)] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]


def test_spread_is_median_min_max_and_relative_range():
    assert spread([1.0, 3.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "spread": 1.0, "n": 3}


def test_one_replica_manifests_translate_to_one_gateway_and_one_calculator(tmp_path):
    root = one_replica_manifests(ROOT, tmp_path)
    manifests = read_manifests(load_mesh(Layout(root), "canary-100-0"))
    replicas = {key.split("/")[-1]: d.replicas for key, d in manifests.deployments.items()}
    assert replicas == {"gateway": 1, "calculator-v1": 1, "calculator-v2": 0}


@pytest.mark.processes
@needs("wrk", shutil.which("wrk"), APT.format("wrk"))
def test_quick_mode_runs_end_to_end_on_tiny_numbers(tmp_path):
    plan = dataclasses.replace(
        QUICK, warmup_s=1, saturation_s=1, fixed_s=1, rounds=1, scrape_requests=20, scrapes=2, cold_starts=0
    )
    (tmp_path / "BENCHMARKS.md").write_text("# Benchmarks\n\nWritten by people.\n")
    results = run(plan, tmp_path, tmp_path / "BENCHMARKS.md", "python -m bench (test)")

    written = json.loads((tmp_path / "results.json").read_text())
    keys = {
        "mesh_added_p50_ms", "mesh_added_p99_ms", "mesh_throughput_ratio", "telemetry_rps_ratio",
        "telemetry_p50_ratio", "envoy_rss_mb", "scrape_ms", "cold_start_s",
    }
    assert keys <= set(written["summary"]) and written["summary"] == results["summary"]
    for path in ("direct", "gateway", "mesh"):
        run_ = written["raw"]["saturation"][path][0]
        assert run_["requests"] > 0 and run_["non2xx"] == 0 and run_["socket_errors"] == 0
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert text.startswith("# Benchmarks\n\nWritten by people.\n") and report.BEGIN in text and report.END in text
    assert "| mesh added latency, p50" in text
    if (tmp_path / "latency.png").exists():  # matplotlib installed
        assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
