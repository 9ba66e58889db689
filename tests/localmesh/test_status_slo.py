"""make status's SLO lines, from Prometheus' answers (pure)."""

from localmesh.__main__ import slo_lines


def sample(value, **labels):
    return {"metric": labels, "value": [0, str(value)]}


def test_budget_left_burn_and_firing_alerts():
    lines = slo_lines(
        [sample(0.875, slo="calcular-availability"), sample(-2.5, slo="calcular-latency")],
        [sample(200.0, slo="calcular-availability")],
        [sample(1, alertname="CalcularAvailabilityBudgetBurn", severity="page", slo="calcular-availability",
                long_window="1h", short_window="5m")],
    )
    assert lines == [
        "SLO calcular-availability: 87.5% of the 30-day error budget left, burning 200.0x over the last 5m",
        "SLO calcular-latency: 0.0% of the 30-day error budget left",
        "Alerts firing: page: CalcularAvailabilityBudgetBurn (calcular-availability, 1h/5m)",
    ]


def test_no_traffic_yet_says_so():
    assert slo_lines([], [], []) == [
        "SLOs: no data yet (no request through the ingress within the SLO's window in this Prometheus)"
    ]
