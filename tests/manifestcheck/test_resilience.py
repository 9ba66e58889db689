"""Each fault-tolerance rule fails on a policy that passes the schema but does not do what it says."""

from __future__ import annotations

import pytest

from manifestcheck import resilience
from tests.manifestcheck.conftest import env_of

VS = "istio/calculator-virtualservice.yaml"
DR = "istio/calculator-destinationrule.yaml"
GATEWAY_VS = "istio/gateway-virtualservice.yaml"


def run(repo_copy, check):
    return check(list(repo_copy.load().mesh))


def split(document):
    return document["spec"]["http"][1]


def policy(document):
    return document["spec"]["trafficPolicy"]


# --- retries -------------------------------------------------------------------


def test_a_mesh_route_says_how_it_retries(repo_copy):
    repo_copy.edit(VS, lambda d: split(d).pop("retries"))
    (finding,) = run(repo_copy, resilience.check_retries)
    assert (finding.check, finding.file, finding.field) == ("retries", VS, "spec.http[1].retries")
    assert "never retries the app's 503" in finding.message


@pytest.mark.parametrize(
    "retry_on, message",
    [
        ("connect-failure,refused-stream,reset", "does not retry the app's 503"),
        ("gateway-error,connect-failure", "does not retry a reset connection"),
        ("5xx,reset,connect-failure", "retries an application's 500"),
    ],
)
def test_retry_on_covers_the_apps_503_and_resets(repo_copy, retry_on, message):
    repo_copy.edit(VS, lambda d: split(d)["retries"].update(retryOn=retry_on))
    (finding,) = run(repo_copy, resilience.check_retries)
    assert finding.field == "spec.http[1].retries.retryOn"
    assert message in finding.message


def test_retry_on_503_or_gateway_error_is_enough(repo_copy):
    repo_copy.edit(VS, lambda d: split(d)["retries"].update(retryOn="gateway-error,reset"))
    repo_copy.edit(VS, lambda d: d["spec"]["http"][0]["retries"].update(retryOn="503,reset"))
    assert run(repo_copy, resilience.check_retries) == []


def test_a_per_try_timeout_needs_a_retry_on_that_retries_it(repo_copy):
    repo_copy.edit(VS, lambda d: split(d)["retries"].update(retryOn="connect-failure,503"))
    findings = run(repo_copy, resilience.check_retries)
    assert "spec.http[1].retries.perTryTimeout" in {f.field for f in findings}


def test_retries_off_is_said_with_attempts_0(repository):
    (scenario,) = repository.scenarios["virtual-service-calculator-no-retries"]
    merged = [scenario if m.key == scenario.key else m for m in repository.mesh]
    assert resilience.check_retries(merged) == []


def test_ingress_routes_keep_their_own_retry_policy(repo_copy):
    repo_copy.edit(GATEWAY_VS, lambda d: d["spec"]["http"][0].pop("retries"))
    assert run(repo_copy, resilience.check_retries) == []


# --- timeouts ------------------------------------------------------------------


def test_a_mesh_route_has_a_timeout(repo_copy):
    repo_copy.edit(VS, lambda d: split(d).pop("timeout"))
    (finding,) = run(repo_copy, resilience.check_timeouts)
    assert (finding.check, finding.field) == ("timeouts", "spec.http[1].timeout")


def test_the_route_timeout_is_below_the_gateways_own(repo_copy):
    repo_copy.edit(VS, lambda d: split(d).update(timeout="5s"))
    (finding,) = run(repo_copy, resilience.check_timeouts)
    assert finding.field == "spec.http[1].timeout"
    assert "not below gateway's own 5s" in finding.message


def test_the_gateways_timeout_is_read_from_its_env(repo_copy):
    repo_copy.edit(
        "k8s/base/gateway-deployment.yaml",
        lambda d: env_of(d, "CALCULATOR_TIMEOUT_SECONDS").update(value="2.5"),
    )
    findings = run(repo_copy, resilience.check_timeouts)
    assert {f.field for f in findings} == {"spec.http[0].timeout", "spec.http[1].timeout"}


def test_the_gateways_default_url_and_timeout_apply(repo_copy):
    def defaults(document):
        container = document["spec"]["template"]["spec"]["containers"][0]
        container["env"] = [e for e in container["env"] if not e["name"].startswith("CALCULATOR_")]

    repo_copy.edit("k8s/base/gateway-deployment.yaml", defaults)
    repo_copy.edit(VS, lambda d: split(d).update(timeout="6s"))
    (finding,) = run(repo_copy, resilience.check_timeouts)
    assert "own 5s" in finding.message


def test_the_ingress_route_outlasts_the_gateways_wait(repo_copy):
    repo_copy.edit(GATEWAY_VS, lambda d: d["spec"]["http"][0].update(timeout="5s"))
    (finding,) = run(repo_copy, resilience.check_timeouts)
    assert (finding.file, finding.field) == (GATEWAY_VS, "spec.http[0].timeout")


def test_a_try_fits_in_the_route_timeout(repo_copy):
    repo_copy.edit(VS, lambda d: split(d)["retries"].update(perTryTimeout="4s"))
    (finding,) = run(repo_copy, resilience.check_timeouts)
    assert finding.field == "spec.http[1].retries.perTryTimeout"


@pytest.mark.parametrize(
    "file, change, field",
    [
        (VS, lambda d: split(d).update(timeout="3 seconds"), "spec.http[1].timeout"),
        (VS, lambda d: split(d).update(timeout="0s"), "spec.http[1].timeout"),
        (
            DR,
            lambda d: policy(d)["outlierDetection"].update(interval="5"),
            "spec.trafficPolicy.outlierDetection.interval",
        ),
    ],
    ids=["words", "zero", "no-unit"],
)
def test_durations_are_well_formed(repo_copy, file, change, field):
    repo_copy.edit(file, change)
    findings = run(repo_copy, resilience.check_timeouts)
    assert field in {f.field for f in findings}


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("3s", 3.0),
        ("500ms", 0.5),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        ("1h", 3600.0),
        ("3", None),
        ("s", None),
        ("-1s", None),
    ],
)
def test_parse_duration(text, seconds):
    assert resilience.parse_duration(text) == seconds


# --- connection pool -------------------------------------------------------------


def test_max_connections_alone_is_no_circuit_breaker(repo_copy):
    repo_copy.edit(DR, lambda d: policy(d)["connectionPool"]["http"].pop("http1MaxPendingRequests"))
    (finding,) = run(repo_copy, resilience.check_connection_pool)
    assert (finding.check, finding.field) == (
        "connection-pool",
        "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests",
    )


def test_a_threshold_of_zero_means_unset(repo_copy):
    repo_copy.edit(
        "istio/scenarios/destination-rule-calculator-circuit-breaker.yaml",
        lambda d: policy(d)["connectionPool"]["tcp"].update(maxConnections=0),
    )
    repository = repo_copy.load()
    (scenario,) = repository.scenarios["destination-rule-calculator-circuit-breaker"]
    merged = [scenario if m.key == scenario.key else m for m in repository.mesh]
    (finding,) = resilience.check_connection_pool(merged)
    assert finding.field == "spec.trafficPolicy.connectionPool.tcp.maxConnections"


@pytest.mark.parametrize("idle", ["75s", "2m", None], ids=["equal", "above", "missing"])
def test_idle_timeout_is_below_gunicorns_keepalive(repo_copy, idle):
    def change(document):
        http = policy(document)["connectionPool"]["http"]
        if idle is None:
            http.pop("idleTimeout")
        else:
            http["idleTimeout"] = idle

    repo_copy.edit(DR, change)
    (finding,) = run(repo_copy, resilience.check_connection_pool)
    assert finding.field == "spec.trafficPolicy.connectionPool.http.idleTimeout"
    assert "503 UC" in finding.message


def test_the_keepalive_is_read_from_the_pods(repo_copy):
    repo_copy.edit(
        "k8s/base/calculator-v2-deployment.yaml", lambda d: env_of(d, "KEEPALIVE_SECONDS").update(value="20")
    )
    (finding,) = run(repo_copy, resilience.check_connection_pool)
    assert "keep-alive 20s" in finding.message


def test_a_subset_policy_replaces_the_whole_block(repo_copy):
    """A subset's connectionPool without idleTimeout does not inherit the host's: Istio merges no fields."""
    repo_copy.edit(
        DR,
        lambda d: d["spec"]["subsets"][1].update(
            trafficPolicy={"connectionPool": {"http": {"http1MaxPendingRequests": 8}}}
        ),
    )
    (finding,) = run(repo_copy, resilience.check_connection_pool)
    assert finding.field == "spec.subsets[1].trafficPolicy.connectionPool.http.idleTimeout"


# --- outlier detection ------------------------------------------------------------


@pytest.mark.parametrize("percent", [None, 10, 49], ids=["default-10", "10", "49"])
def test_max_ejection_percent_lets_one_of_two_pods_go(repo_copy, percent):
    def change(document):
        outlier = policy(document)["outlierDetection"]
        if percent is None:
            outlier.pop("maxEjectionPercent")
        else:
            outlier["maxEjectionPercent"] = percent

    repo_copy.edit(DR, change)
    findings = run(repo_copy, resilience.check_outlier_detection)
    assert {f.field for f in findings} == {"spec.trafficPolicy.outlierDetection.maxEjectionPercent"}
    assert any("cluster v1" in f.message and "needs >= 50" in f.message for f in findings)


def test_more_replicas_need_less(repo_copy):
    repo_copy.edit(DR, lambda d: policy(d)["outlierDetection"].update(maxEjectionPercent=25))
    # The hosts are the autoscaler's minimum: the Deployment leaves its scale to it.
    repo_copy.edit("k8s/base/calculator-v1-horizontalpodautoscaler.yaml", lambda d: d["spec"].update(minReplicas=4))
    assert run(repo_copy, resilience.check_outlier_detection) == []


def test_outlier_detection_is_there(repo_copy):
    repo_copy.edit(DR, lambda d: policy(d).pop("outlierDetection"))
    (finding,) = run(repo_copy, resilience.check_outlier_detection)
    assert (finding.check, finding.field) == ("outlier-detection", "spec.trafficPolicy.outlierDetection")


def test_an_outlier_detector_that_never_triggers(repo_copy):
    repo_copy.edit(DR, lambda d: policy(d)["outlierDetection"].pop("consecutiveGatewayErrors"))
    (finding,) = run(repo_copy, resilience.check_outlier_detection)
    assert "nothing ever ejects" in finding.message


@pytest.mark.parametrize("change", [{"consecutive5xxErrors": 3}, {"consecutive5xxErrors": None}], ids=["3", "absent"])
def test_an_applications_500_must_not_eject(repo_copy, change):
    def edit(document):
        outlier = policy(document)["outlierDetection"]
        outlier.update(change)
        if outlier["consecutive5xxErrors"] is None:
            del outlier["consecutive5xxErrors"]  # Istio's default: 5

    repo_copy.edit(DR, edit)
    (finding,) = run(repo_copy, resilience.check_outlier_detection)
    assert finding.field == "spec.trafficPolicy.outlierDetection.consecutive5xxErrors"
    assert "counts an application's 500" in finding.message


def test_local_origin_failures_alone_can_eject(repo_copy):
    # The gateway's DestinationRule: its 5xx speak for the calculator, only connection failures eject it.
    split = {"consecutive5xxErrors": 0, "splitExternalLocalOriginErrors": True, "consecutiveLocalOriginFailures": 3}
    repo_copy.edit(DR, lambda d: policy(d)["outlierDetection"].pop("consecutiveGatewayErrors"))
    repo_copy.edit(DR, lambda d: policy(d)["outlierDetection"].update(split))
    assert run(repo_copy, resilience.check_outlier_detection) == []
    repo_copy.edit(DR, lambda d: policy(d)["outlierDetection"].update(splitExternalLocalOriginErrors=False))
    (finding,) = run(repo_copy, resilience.check_outlier_detection)
    assert "nothing ever ejects" in finding.message
