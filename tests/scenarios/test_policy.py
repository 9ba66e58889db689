"""The policy numbers the checks judge, read from the Istio YAML."""

from __future__ import annotations

import pytest

from localmesh.loader import Layout
from localmesh.translate import TranslationError
from scenarios.policy import calculator_policy
from tests.support import ROOT

LAYOUT = Layout(ROOT)


def test_the_base_route_and_destination():
    base = calculator_policy(LAYOUT)
    assert (base.split.timeout_seconds, base.split.attempts, base.split.per_try_timeout_seconds) == (3.0, 3, 1.0)
    assert base.split.weight_share("v2") == pytest.approx(0.10)
    assert base.header.weights == {"v2": 100}
    assert base.subsets["v1"].consecutive_gateway_errors == 3


def test_each_file_changes_what_it_names():
    assert calculator_policy(LAYOUT, ["virtual-service-calculator-no-retries"]).split.attempts == 1
    delay = calculator_policy(LAYOUT, ["virtual-service-calculator-fault-delay"]).split
    assert (delay.delay_seconds, delay.delay_share) == (2.0, 0.5)
    abort = calculator_policy(LAYOUT, ["virtual-service-calculator-fault-abort"]).split
    assert (abort.abort_status, abort.abort_share) == (503, 0.5)
    mirror = calculator_policy(LAYOUT, ["virtual-service-calculator-mirror-v2"]).split
    assert (mirror.mirror_subset, mirror.weight_share("v1")) == ("v2", 1.0)
    breaker = calculator_policy(LAYOUT, ["destination-rule-calculator-circuit-breaker"]).subsets["v2"]
    assert (breaker.max_connections, breaker.max_pending_requests) == (1, 1)
    # Files apply in turn: the second keeps what the first changed in another resource.
    both = calculator_policy(LAYOUT, ["destination-rule-calculator-lenient-ejection", "virtual-service-calculator-no-retries"])
    assert both.split.attempts == 1 and both.subsets["v1"].consecutive_gateway_errors == 25


def test_an_unknown_file_is_refused_naming_the_known_ones():
    with pytest.raises(TranslationError, match="no policy file 'nope'.*virtual-service-calculator-50-50"):
        calculator_policy(LAYOUT, ["nope"])
