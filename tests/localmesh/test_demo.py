"""The scenario runner: its verdicts on broken measurements, its command line, and every scenario
run end to end on the local mesh, passing its own expectation (``-rP`` shows each verdict table)."""

from __future__ import annotations

import json
import tempfile
from contextlib import ExitStack
from dataclasses import replace

import pytest

from localmesh import __main__ as cli
from localmesh import demo
from localmesh.demo import SCENARIOS, Check, Measurement, Verdict, verdict
from localmesh.demo_kind import deployment_env, parse_text_access_log
from localmesh.load import LoadSpec, hey_command, parse_hey_csv, percentile
from localmesh.observe import binomial_interval, read_access_log, wilson_interval
from tests.support import ROOT, running_mesh
from tests.tools import needs_hey

LATENCY = {"min": 0.01, "p50": 0.05, "p99": 0.2, "max": 0.3}


def measured(**fields) -> Measurement:
    """A local measurement of 400 requests, all 200, 40 from v2, nothing flagged: then ``fields``."""
    base = Measurement(
        where="local",
        requests=400,
        answered=400,
        seconds=4.0,
        statuses={200: 400},
        latency=LATENCY,
        versions={"v1": 360, "v2": 40},
        sidecar_calls=400,
        sidecar_flags={"-": 400},
        flag_ms={"-": {"min": 2, "max": 90}},
        attempts={1: 400},
        ingress_flags={"-": 400},
        replicas={"calculator-v1-0": {200: 180}, "calculator-v1-1": {200: 180}, "calculator-v2-0": {200: 40}},
        envoy={},
        ejections={"gateway-0-sidecar": 0, "gateway-1-sidecar": 0},
    )
    return replace(base, **fields)


def failed_checks(name: str, m: Measurement) -> list[str]:
    return [c.expectation for c in verdict(SCENARIOS[name], m).checks if c.passed is False]


# -- the catalogue ---------------------------------------------------------------------------------


def test_the_catalogue_has_every_scenario_the_issue_names():
    assert set(SCENARIOS) >= {
        "baseline", "canary-90-10", "canary-50-50", "canary-header", "retries", "no-retries",
        "outlier-detection", "circuit-breaker", "fault-delay", "fault-abort", "timeout", "mirror", "kill-replica",
    }


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_scenario_names_files_that_exist(name):
    for path in SCENARIOS[name].files():
        assert (ROOT / path).is_file(), path


def test_retries_and_no_retries_differ_only_in_the_retries():
    retries, no_retries = SCENARIOS["retries"], SCENARIOS["no-retries"]
    assert retries.pod_env == no_retries.pod_env
    assert no_retries.istio == f"{retries.istio}+retries-off"
    assert retries.load == no_retries.load


# -- verdicts: pure, on broken measurements ---------------------------------------------------------


def test_a_healthy_baseline_passes_and_exits_0():
    v = verdict(SCENARIOS["baseline"], measured())
    assert v.passed and v.exit_status == 0
    assert [c.mark for c in v.checks] == ["PASS", "PASS", "PASS"]


@pytest.mark.parametrize(
    "broken, failing",
    [
        (dict(statuses={200: 399, 503: 1}), "every request answered 200"),
        (dict(answered=399, statuses={200: 399}), "every request answered 200"),  # one without an answer
        (dict(versions={"v1": 400}), "v2's share consistent with 10%"),
        (dict(versions={"v1": 200, "v2": 200}), "v2's share consistent with 10%"),
        (dict(versions={}), "v2's share consistent with 10%"),  # nothing measured is no share
        (dict(sidecar_flags={"-": 399, "URX": 1}), "no Envoy response flag"),
    ],
)
def test_a_broken_baseline_fails_and_exits_1(broken, failing):
    v = verdict(SCENARIOS["baseline"], measured(**broken))
    assert not v.passed and v.exit_status == 1
    assert any(c.expectation.startswith(failing) for c in v.checks if c.passed is False)


def test_retries_pass_only_when_the_replica_failed_and_the_clients_did_not_see_it():
    hidden = measured(
        statuses={200: 600}, requests=600, answered=600,
        replicas={"calculator-v1-0": {200: 120, 503: 150}},
        envoy={"v1.retry.upstream_rq_503": 150},
    )
    assert failed_checks("retries", hidden) == []
    # A replica that did not fail shows nothing about retries.
    assert failed_checks("retries", replace(hidden, replicas={"calculator-v1-0": {200: 270}}, envoy={})) == [
        "calculator-v1-0 failed (its own 503) for >= 10% of the requests",
        "clients saw < 5% of calculator-v1-0's 503s (the retries hid the rest)",
    ]
    seen = replace(hidden, statuses={200: 590, 503: 10}, envoy={"v1.retry.upstream_rq_503": 140})
    assert failed_checks("retries", seen) == [
        "clients saw < 5% of calculator-v1-0's 503s (the retries hid the rest)",
        "clients' success rate >= 99.0%",
    ]
    # The sidecars' count and the replica's disagree: one of them is wrong.
    assert failed_checks("retries", replace(hidden, envoy={"v1.retry.upstream_rq_503": 149})) == [
        "each 503 of calculator-v1-0 retried by a sidecar or seen by a client"
    ]


def test_no_retries_passes_only_when_each_failure_reached_a_client():
    lesson = measured(
        statuses={200: 450, 503: 150}, requests=600, answered=600,
        replicas={"calculator-v1-0": {200: 120, 503: 150}}, envoy={"v1.upstream_rq_retry": 0},
    )
    assert failed_checks("no-retries", lesson) == []
    assert failed_checks("no-retries", replace(lesson, statuses={200: 460, 503: 140})) == [
        "every 503 of calculator-v1-0 reached a client"
    ]
    assert failed_checks("no-retries", replace(lesson, envoy={"v1.upstream_rq_retry": 3})) == ["no request retried"]


def test_outlier_detection_fails_when_a_sidecar_never_ejected():
    ejected = measured(replicas={"calculator-v1-0": {503: 6}}, ejections={"gateway-0-sidecar": 1, "gateway-1-sidecar": 1})
    assert failed_checks("outlier-detection", ejected) == []
    once = replace(ejected, ejections={"gateway-0-sidecar": 1, "gateway-1-sidecar": 0},
                   replicas={"calculator-v1-0": {503: 90}})
    assert failed_checks("outlier-detection", once) == [
        "calculator-v1-0 ejected by each gateway sidecar",
        "calculator-v1-0 got <= 5% of the requests (without ejection: about 45%)",
    ]


def test_circuit_breaking_fails_when_an_overflow_waited_or_reached_the_app():
    good = measured(
        requests=96, answered=96, statuses={200: 20, 503: 76}, sidecar_flags={"-": 20, "UO": 76},
        flag_ms={"-": {"min": 500, "max": 1010}, "UO": {"min": 0, "max": 9}},
        replicas={"calculator-v2-0": {200: 20}}, envoy={"v2.upstream_rq_retry": 0},
    )
    assert failed_checks("circuit-breaker", good) == []
    slow = replace(good, flag_ms={"UO": {"min": 0, "max": 700}})
    assert failed_checks("circuit-breaker", slow) == ["an overflow fails fast (< 0.5 s at the sidecar)"]
    leaked = replace(good, replicas={"calculator-v2-0": {200: 20, 503: 1}})
    assert failed_checks("circuit-breaker", leaked) == [
        "the calculators answered only the 200s (an overflow never reaches the app)"
    ]


def test_timeout_fails_when_the_answers_come_late_or_without_the_retries():
    good = measured(requests=8, answered=8, statuses={504: 8}, latency={"min": 3.05, "p50": 3.1, "p99": 3.2, "max": 3.2},
                    sidecar_flags={"UT": 8}, attempts={3: 8})
    assert failed_checks("timeout", good) == []
    late = replace(good, latency={"min": 3.05, "p50": 3.1, "p99": 4.0, "max": 4.0}, attempts={1: 8})
    assert failed_checks("timeout", late) == [
        "every answer after 3 s and before 3.5 s",
        "every call made 3 attempts (perTryTimeout 1 s x 3 = the 3 s budget)",
    ]


def test_fault_abort_and_mirror_and_kill_on_broken_inputs():
    # No abort at all: the share fails (the FI check holds vacuously, 0 flagged for 0 answered 503).
    assert failed_checks("fault-abort", measured(statuses={200: 400}, replicas={"calculator-v1-0": {200: 400}})) == [
        "503s consistent with 50% (99.9%: 167-233 of 400)"
    ]
    assert failed_checks("mirror", measured(versions={"v1": 400}, mirrored={"v1": 400, "v2": 398})) == [
        "v2 answered a copy of every request v1 answered"
    ]
    never = measured(killed={"pod": "calculator-v1-0", "pid": 1, "at": 1.0, "back_after": None}, envoy={"v1.upstream_rq_retry": 4})
    assert failed_checks("kill-replica", never) == ["the killed replica restarted and ready again within 30 s"]
    assert failed_checks("kill-replica", measured(envoy={"v1.upstream_rq_retry": 4})) == [
        "the killed replica restarted and ready again within 30 s"
    ]


def test_checks_not_measured_on_kind_neither_pass_nor_fail():
    kind = measured(where="kind", replicas=None, envoy=None, ejections=None, attempts=None)
    v = verdict(SCENARIOS["no-retries"], kind)
    assert [c.passed for c in v.checks] == [None, None, None]
    assert not v.passed and v.exit_status == 1  # nothing measured is no verdict
    v = verdict(SCENARIOS["fault-abort"], replace(kind, statuses={200: 200, 503: 200}, sidecar_flags={"-": 200, "FI": 200}))
    assert [c.mark for c in v.checks] == ["PASS", "PASS", "n/a"] and v.passed


def test_the_table_and_the_json_report_say_what_failed():
    scenario = SCENARIOS["baseline"]
    broken = measured(statuses={200: 390, 503: 10})
    v = verdict(scenario, broken)
    table = demo.render(scenario, broken, v)
    assert "FAIL  every request answered 200: 390 of 400 (10x503)" in table
    assert table.splitlines()[-1].startswith("verdict  FAIL")
    report = json.loads(json.dumps(demo.report(scenario, broken, v)))
    assert report["passed"] is False
    assert Measurement.from_json(report["measurement"]) == broken


def test_the_verdict_needs_every_measured_check():
    assert Verdict([Check("a", "", True), Check("b", "", None)]).passed
    assert not Verdict([Check("a", "", True), Check("b", "", False)]).passed
    assert not Verdict([]).passed


# -- the command line, with the measurement stubbed -------------------------------------------------


@pytest.fixture
def stub_run(monkeypatch, tmp_path):
    # The command's run directory (kept when a verdict fails) goes under tmp_path.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def stub(result: Measurement):
        monkeypatch.setattr(demo, "run_local", lambda scenario, root, run_dir, say: result)

    return stub


def test_demo_exits_1_when_the_expectation_did_not_hold(stub_run, capsys, tmp_path):
    stub_run(measured(statuses={200: 399, 503: 1}))
    assert cli.main(["demo", "baseline"]) == 1
    captured = capsys.readouterr()
    assert "verdict  FAIL" in captured.out
    kept = list(tmp_path.glob("meshcalc-demo-baseline-*"))
    assert len(kept) == 1 and f"logs kept in {kept[0]}/logs" in captured.err


def test_demo_json_prints_only_the_report_on_stdout(stub_run, capsys, tmp_path):
    stub_run(measured())
    assert cli.main(["demo", "baseline", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["passed"] is True
    assert not list(tmp_path.glob("meshcalc-demo-*"))  # removed when the expectation held


def test_demo_without_a_known_name_lists_the_scenarios_and_exits_2(capsys):
    assert cli.main(["demo"]) == 2
    assert "kill-replica" in capsys.readouterr().err
    assert cli.main(["demo", "nope"]) == 2
    assert cli.main(["demo", "--list"]) == 0
    assert "retries" in capsys.readouterr().out


def test_demo_on_kind_refuses_a_one_replica_fault_with_the_reason(capsys):
    assert cli.main(["demo", "retries", "--kind"]) == 2
    assert "Deployment" in capsys.readouterr().err


# -- the load generator and the logs: pure parts ----------------------------------------------------


def test_hey_command_line():
    spec = LoadSpec(96, concurrency=12, rate=2.5, headers={"x-canary": "always"})
    assert hey_command("http://127.0.0.1:8080/", spec) == [
        "hey", "-n", "96", "-c", "12", "-q", "2.5", "-t", "10", "-m", "POST", "-T", "application/json",
        "-d", '{"operacion":"sumar","numero1":2,"numero2":3}', "-H", "x-canary: always",
        "-o", "csv", "http://127.0.0.1:8080/calcular",
    ]


def test_load_spec_refuses_what_hey_would_silently_change():
    with pytest.raises(ValueError, match="multiple"):
        LoadSpec(100, concurrency=8)  # hey would send 96
    with pytest.raises(ValueError):
        LoadSpec(4, concurrency=8)


def test_hey_csv_and_percentiles():
    text = (
        "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset\n"
        "0.0521,0.0006,0.0000,0.0007,0.0507,0.0002,200,0.0010\n"
        "3.1000,0.0009,0.0000,0.0007,0.0573,0.0010,504,0.0005\n"
    )
    samples = parse_hey_csv(text)
    assert [(s.seconds, s.status) for s in samples] == [(0.0521, 200), (3.1, 504)]
    assert parse_hey_csv("") == []
    with pytest.raises(ValueError):
        parse_hey_csv("Summary:\n  Total: 1 secs\n")
    assert percentile(list(range(1, 101)), 0.99) == 99
    assert percentile(list(range(1, 101)), 0.5) == 50
    assert percentile([], 0.5) is None


def test_intervals():
    low, high = binomial_interval(0.1, 1000)
    assert (round(low), round(high)) == (69, 131)
    low, high = wilson_interval(100, 1000)
    assert low < 0.1 < high and high - low < 0.07
    low, high = wilson_interval(10, 100)
    assert high - low > 0.15  # a hundred requests cannot tell 10% from 5% or 20%


def test_access_log_reader_leaves_a_half_written_line(tmp_path):
    log = tmp_path / "ingress-access.log"
    log.write_bytes(b'{"response_code":200}\n{"response_co')
    entries, offset = read_access_log(log)
    assert entries == [{"response_code": 200}] and offset == 22
    with log.open("ab") as handle:
        handle.write(b'de":503}\n')
    assert read_access_log(log, offset) == ([{"response_code": 503}], len(log.read_bytes()))


def test_sidecar_entries_are_counted_by_flag_version_and_attempts():
    entries = [
        {"path": "/calcular", "response_code": 200, "response_flags": "-", "duration": 40, "upstream_attempts": 2,
         "upstream_cluster": "outbound|80|v1|calculator.meshcalc.svc.cluster.local"},
        {"path": "/calcular", "response_code": 503, "response_flags": "UO", "duration": 0, "upstream_attempts": 1,
         "upstream_cluster": "outbound|80|v2|calculator.meshcalc.svc.cluster.local"},
        {"path": "/healthz", "response_code": 200, "response_flags": "-", "duration": 1},
    ]
    assert demo.summarize_calls(entries) == {
        "sidecar_calls": 2,
        "sidecar_flags": {"-": 1, "UO": 1},
        "flag_ms": {"-": {"min": 40, "max": 40}, "UO": {"min": 0, "max": 0}},
        "attempts": {2: 1, 1: 1},
        "versions": {"v1": 1},
    }


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


def test_kind_knobs_are_per_deployment():
    assert deployment_env(demo.SLOW) == {"calculator-v1": {"FAULT_DELAY_SECONDS": "4"}, "calculator-v2": {"FAULT_DELAY_SECONDS": "0.5"}}
    with pytest.raises(ValueError, match="calculator-v1"):
        deployment_env({"calculator-v1-0": {"FAULT_FAILURE_RATE": "0.5"}, "calculator-v1-1": {}})


# -- every scenario, end to end on the local mesh ----------------------------------------------------


def _order() -> list[str]:
    """The scenarios grouped by their fault knobs, so that each group shares one mesh; kill-replica
    last of its group (the replica it kills stays ejected for 30 s)."""
    groups: dict[str, list[str]] = {}
    for name, scenario in SCENARIOS.items():
        groups.setdefault(json.dumps(scenario.pod_env, sort_keys=True), []).append(name)
    return [n for names in groups.values() for n in sorted(names, key=lambda n: SCENARIOS[n].kill is not None)]


class SharedMeshes:
    """One running mesh at a time, for the scenarios of one set of fault knobs."""

    def __init__(self, tmp_path_factory):
        self.factory, self.key, self.stack, self.mesh = tmp_path_factory, None, ExitStack(), None

    def for_knobs(self, pod_env):
        key = json.dumps(pod_env, sort_keys=True)
        if key != self.key:
            self.close()
            self.mesh = self.stack.enter_context(running_mesh(self.factory.mktemp("demo-mesh"), pod_env=pod_env))
            self.key = key
        return self.mesh

    def close(self):
        self.stack.close()
        self.key, self.mesh = None, None


@pytest.fixture(scope="module")
def meshes(tmp_path_factory):
    shared = SharedMeshes(tmp_path_factory)
    yield shared
    shared.close()


@pytest.mark.processes
@needs_hey
@pytest.mark.parametrize("name", _order())
def test_each_scenario_passes_its_own_expectation(meshes, name):
    scenario = SCENARIOS[name]
    mesh = meshes.for_knobs(scenario.pod_env)
    m = demo.measure_local(mesh, scenario)
    v = verdict(scenario, m)
    table = demo.render(scenario, m, v)
    print(f"\n== demo {name} (mesh shared by the scenarios of the same fault knobs)\n{table}")
    assert v.passed, table
