"""make top's frame from readings and snapshots, broken ones included: no traffic, a source down,
a restarted process, no Prometheus. Pure: no process, no port."""

from __future__ import annotations

import math

from rich.console import Console

from localmesh.topview import (
    INGRESS,
    Counters,
    FromPrometheus,
    Reading,
    Row,
    RowKey,
    SloState,
    Snapshot,
    app_counters,
    by_row,
    envoy_counters,
    growth,
    render,
    slo_states,
    snapshot,
    window_seconds,
)

GATEWAY, V1, V2 = RowKey("gateway", "v1"), RowKey("calculator", "v1"), RowKey("calculator", "v2")
ROWS = (INGRESS, GATEWAY, V1, V2)
VERSIONS = {"gateway": ["v1"], "calculator": ["v1", "v2"]}
BUDGET = 0.001
V1_CLUSTER = "cluster.outbound|80|v1|calculator.meshcalc.svc.cluster.local."
GATEWAY_CLUSTER = "cluster.outbound|80||gateway.meshcalc.svc.cluster.local."


def text(renderable) -> str:
    console = Console(width=160, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def cells(frame: str, workload: str, version: str) -> list[str]:
    """The cells of a table row, by its first two."""
    for line in frame.splitlines():
        found = [cell.strip() for cell in line.strip("│ ").split("│")]
        if found[:2] == [workload, version]:
            return found
    raise AssertionError(f"no row {workload} {version} in:\n{frame}")


COLUMNS = ["WORKLOAD", "VERSION", "PODS", "RPS", "SUCCESS", "P50", "P99", "RETRIES/S", "EJECTED", "OVERFLOWS/S", "BURN"]


def column(row: list[str], name: str) -> str:
    return row[COLUMNS.index(name)]


def reading(at: float, sources: dict, pods=None, down=(), scenario="base") -> Reading:
    return Reading(at, sources, ROWS, pods or {INGRESS: (1, 1), GATEWAY: (2, 2), V1: (2, 2), V2: (1, 1)}, tuple(down), scenario)


# -- counters from what sources serve -------------------------------------------------------------


def test_app_counters_leave_probes_out_and_count_5xx_as_failed():
    samples = {
        ("http_server_requests_total", (("method", "POST"), ("route", "/calcular"), ("status", "200"))): 90.0,
        ("http_server_requests_total", (("method", "POST"), ("route", "/calcular"), ("status", "503"))): 6.0,
        ("http_server_requests_total", (("method", "POST"), ("route", "/calcular"), ("status", "400"))): 4.0,
        ("http_server_requests_total", (("method", "GET"), ("route", "/readyz"), ("status", "503"))): 50.0,
        ("http_server_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "200"))): 70.0,
        ("http_server_request_duration_seconds_count", (("method", "POST"), ("route", "/calcular"))): 100.0,
    }
    assert app_counters(samples) == Counters(requests=100.0, failed=6.0)


def test_envoy_counters_go_to_the_row_of_the_subset_or_of_the_only_version():
    stats = {
        V1_CLUSTER + "upstream_rq_retry": 7,
        V1_CLUSTER + "upstream_rq_pending_overflow": 2,
        V1_CLUSTER + "outlier_detection.ejections_active": 1,
        V1_CLUSTER + "upstream_rq_200": 500,  # a sidecar's answers: the replicas count those
        # No subset, two versions: no one row is it.
        "cluster.outbound|80||calculator.meshcalc.svc.cluster.local.upstream_rq_retry": 99,
        GATEWAY_CLUSTER + "upstream_rq_retry": 3,
        "cluster.inbound|80||.upstream_rq_retry": 99,
        "server.live": 1,
    }
    found = envoy_counters(stats, VERSIONS)
    assert found == {
        V1: Counters(retries=7, overflows=2, ejected=1),
        GATEWAY: Counters(retries=3, overflows=0, ejected=0),
    }


def test_the_ingress_answers_are_every_code_it_counted_its_own_503_included():
    stats = {GATEWAY_CLUSTER + "upstream_rq_200": 90, GATEWAY_CLUSTER + "upstream_rq_404": 5,
             GATEWAY_CLUSTER + "upstream_rq_503": 4, GATEWAY_CLUSTER + "upstream_rq_504": 1,
             GATEWAY_CLUSTER + "upstream_rq_5xx": 5, GATEWAY_CLUSTER + "upstream_rq_total": 95}
    found = envoy_counters(stats, VERSIONS, answers_for=INGRESS)
    assert found[INGRESS] == Counters(requests=100, failed=5)


def test_a_counter_that_went_down_restarted_from_zero():
    assert growth(Counters(requests=100, failed=5), Counters(requests=130, failed=5)) == Counters(requests=30, failed=0)
    assert growth(Counters(requests=100, failed=5), Counters(requests=12, failed=1)) == Counters(requests=12, failed=1)
    assert growth(Counters(retries=3, ejected=1), Counters(retries=4, ejected=0)) == Counters(retries=1, ejected=0)


# -- snapshots ---------------------------------------------------------------------------------------


def sources_at(ingress: tuple, gateway: list, v1: list, v2: list, v1_retries=0, ejected=0) -> dict:
    found = {"envoy ingress": {INGRESS: Counters(requests=ingress[0], failed=ingress[1]),
                               GATEWAY: Counters(retries=0, overflows=0, ejected=0)},
             "envoy gateway-0-sidecar": {V1: Counters(retries=v1_retries, overflows=0, ejected=ejected),
                                         V2: Counters(retries=0, overflows=0, ejected=0)}}
    for pods, key in ((gateway, GATEWAY), (v1, V1), (v2, V2)):
        for index, (requests, failed) in enumerate(pods):
            found[f"{key.app}-{key.version}-{index}"] = {key: Counters(requests=requests, failed=failed)}
    return found


def test_rates_success_and_burn_over_the_window():
    before = reading(10.0, sources_at((1000, 0), [(500, 0), (500, 0)], [(400, 0), (400, 0)], [(200, 0)]))
    after = reading(12.0, sources_at((1040, 0), [(520, 0), (520, 0)], [(416, 4), (414, 0)], [(210, 0)], v1_retries=4, ejected=1))
    shot = snapshot(before, after, BUDGET)
    rows = {row.key: row for row in shot.rows}
    assert shot.seconds == 2.0
    assert rows[INGRESS].rps == 20.0 and rows[INGRESS].success == 1.0 and rows[INGRESS].burn == 0.0
    assert rows[GATEWAY].rps == 20.0
    assert rows[V1].rps == 15.0 and math.isclose(rows[V1].success, 1 - 4 / 30)
    assert math.isclose(rows[V1].burn, (4 / 30) / BUDGET)
    assert (rows[V1].retries_per_s, rows[V1].ejected) == (2.0, 1)
    assert rows[V2].rps == 5.0
    frame = text(render(shot))
    v1 = cells(frame, "calculator", "v1")
    assert (column(v1, "RPS"), column(v1, "SUCCESS"), column(v1, "RETRIES/S"), column(v1, "EJECTED")) == ("15.0", "86.7%", "2.0", "1")
    assert column(v1, "BURN") == "133x"
    assert column(cells(frame, "ingress", "-"), "BURN") == "0.0x"
    assert "over the last 2.0 s" in frame


def test_no_traffic_gives_no_share_and_no_division_by_zero():
    same = sources_at((1000, 3), [(500, 0), (500, 0)], [(400, 1), (400, 0)], [(200, 0)])
    shot = snapshot(reading(1.0, same), reading(2.0, same), BUDGET)
    for row in shot.rows:
        assert row.rps == 0.0 and row.success is None and row.burn is None
    v2 = cells(text(render(shot)), "calculator", "v2")
    assert (column(v2, "RPS"), column(v2, "SUCCESS"), column(v2, "BURN")) == ("0.0", "-", "-")


def test_one_reading_only_says_it_is_measuring():
    only = reading(1.0, sources_at((1000, 0), [(1, 0), (1, 0)], [(1, 0), (1, 0)], [(1, 0)]))
    shot = snapshot(only, only, BUDGET)
    assert all(row.rps is None for row in shot.rows)
    frame = text(render(shot))
    assert "measuring: one reading so far" in frame
    assert column(cells(frame, "gateway", "v1"), "RPS") == "-"


def test_a_replica_down_counts_the_others_and_is_said():
    before = reading(1.0, sources_at((0, 0), [(0, 0), (0, 0)], [(100, 0), (100, 0)], [(0, 0)]))
    sources = sources_at((0, 0), [(0, 0), (0, 0)], [(110, 0), (100, 0)], [(0, 0)])
    del sources["calculator-v1-1"]
    down = "calculator-v1-1: its /metrics does not answer (timed out): its row counts the others"
    after = reading(2.0, sources, pods={INGRESS: (1, 1), GATEWAY: (2, 2), V1: (1, 2), V2: (1, 1)}, down=[down])
    frame = text(render(snapshot(before, after, BUDGET)))
    v1 = cells(frame, "calculator", "v1")
    assert (column(v1, "PODS"), column(v1, "RPS")) == ("1/2", "10.0")
    assert down in frame


def test_every_source_of_a_row_down_shows_no_rate_rather_than_zero():
    before = reading(1.0, sources_at((10, 0), [(5, 0), (5, 0)], [(5, 0), (5, 0)], [(1, 0)]))
    sources = sources_at((20, 0), [(10, 0), (10, 0)], [(9, 0), (9, 0)], [(1, 0)])
    del sources["calculator-v2-0"]
    frame = text(render(snapshot(before, reading(2.0, sources, pods={INGRESS: (1, 1), GATEWAY: (2, 2), V1: (2, 2), V2: (0, 1)}), BUDGET)))
    v2 = cells(frame, "calculator", "v2")
    assert (column(v2, "PODS"), column(v2, "RPS"), column(v2, "SUCCESS")) == ("0/1", "-", "-")


def test_a_source_back_since_the_last_reading_adds_no_growth_it_cannot_know():
    sources = sources_at((0, 0), [(0, 0), (0, 0)], [(100, 0), (100, 0)], [(0, 0)])
    before_sources = dict(sources)
    del before_sources["calculator-v1-0"]
    later = sources_at((0, 0), [(0, 0), (0, 0)], [(5000, 0), (110, 0)], [(0, 0)])
    shot = snapshot(reading(1.0, before_sources), reading(2.0, later), BUDGET)
    assert {row.key: row.rps for row in shot.rows}[V1] == 10.0


def test_a_share_just_under_one_is_never_rounded_to_100_percent():
    shot = Snapshot("base", 1.0, (Row(V1, (2, 2), 10.0, 0.99996),), None, BUDGET)
    assert column(cells(text(render(shot)), "calculator", "v1"), "SUCCESS") == "99.996%"


# -- with and without Prometheus ---------------------------------------------------------------------


def test_without_prometheus_the_frame_says_what_it_lacks():
    note = "No Prometheus in this mesh (apt-get install prometheus, then make up again): no p50/p99"
    shot = Snapshot("no-retries", 1.0, (Row(INGRESS, (1, 1), 20.0, 0.8, burn=200.0),), None, BUDGET, (note,))
    frame = text(render(shot))
    assert "scenario no-retries" in frame
    assert note in frame
    assert "SLOs" not in frame
    assert column(cells(frame, "ingress", "-"), "P99") == "-"


def test_with_prometheus_the_percentiles_and_the_slos_show():
    prometheus = FromPrometheus(
        {INGRESS: (4.2, 37.0), V1: (0.3, None)},
        (
            SloState("calcular-availability", 0.981, {"5m": 180.0, "1h": 20.5}, firing=("page 1h/5m",), pending=("page 6h/30m",)),
            SloState("calcular-latency", None, {}),
        ),
    )
    same = sources_at((10, 0), [(5, 0), (5, 0)], [(5, 0), (5, 0)], [(1, 0)])
    shot = snapshot(reading(1.0, same), reading(2.0, same), BUDGET, prometheus)
    frame = text(render(shot))
    ingress, v1 = cells(frame, "ingress", "-"), cells(frame, "calculator", "v1")
    assert (column(ingress, "P50"), column(ingress, "P99")) == ("4.2 ms", "37 ms")
    assert (column(v1, "P50"), column(v1, "P99")) == ("0.3 ms", "-")
    availability = cells(frame, "calcular-availability", "98.1%")
    assert availability[2:4] == ["180x", "20.5x"]
    assert "FIRING page 1h/5m; pending page 6h/30m" in availability[-1]
    latency = cells(frame, "calcular-latency", "-")
    assert latency[-1] == "none"


def test_prometheus_answers_become_slo_states_without_nan():
    def sample(value, **labels):
        return {"metric": labels, "value": [0, value]}

    states = slo_states(
        [sample("0.999", __name__="slo:objective:ratio", slo="a"), sample("0.99", __name__="slo:objective:ratio", slo="b")],
        [sample("2", __name__="slo:burn_rate:ratio_rate1h", slo="a"), sample("3", __name__="slo:burn_rate:ratio_rate5m", slo="a"),
         sample("NaN", __name__="slo:burn_rate:ratio_rate1d", slo="a"), sample("1", __name__="slo:burn_rate:ratio_rate5m", slo="zzz")],
        [sample("0.5", slo="a")],
        [sample("1", alertname="X", slo="a", severity="page", long_window="1h", short_window="5m", alertstate="firing")],
    )
    assert states == (
        SloState("a", 0.5, {"5m": 3.0, "1h": 2.0}, ("page 1h/5m",), ()),
        SloState("b", None, {}, (), ()),
    )
    assert list(states[0].burn) == ["5m", "1h"]


def test_percentiles_by_row_skip_nan_and_scale_seconds_to_ms():
    result = [{"metric": {"app": "calculator", "version": "v1"}, "value": [0, "0.004"]},
              {"metric": {"app": "calculator", "version": "v2"}, "value": [0, "NaN"]}]
    assert by_row(result, 1000.0) == {V1: 4.0}
    assert by_row([{"metric": {}, "value": [0, "12"]}], row=INGRESS) == {INGRESS: 12.0}


def test_windows_order_by_length():
    assert sorted(["1d", "5m", "3d", "30m", "1h", "6h", "2h"], key=window_seconds) == ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
