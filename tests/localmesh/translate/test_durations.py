"""Istio durations to Envoy's JSON form."""

from __future__ import annotations

import pytest

from localmesh.translate.durations import duration
from localmesh.translate.errors import Origin, TranslationError

ORIGIN = Origin("istio/x.yaml", "VirtualService", "meshcalc", "x")


@pytest.mark.parametrize(
    ("istio", "envoy"),
    [
        ("0s", "0s"),
        ("2s", "2s"),
        ("0.5s", "0.500s"),
        ("100ms", "0.100s"),
        ("1m30s", "90s"),
        ("1h", "3600s"),
        ("250us", "0.000250s"),
        ("1ns", "0.000000001s"),
        ("1.5ms", "0.001500s"),
    ],
)
def test_durations(istio, envoy):
    assert duration(istio, "spec.http[0].timeout", ORIGIN) == envoy


@pytest.mark.parametrize("text", ["", "2", "s", "-1s", "2 s", 2])
def test_invalid_durations_name_the_field(text):
    with pytest.raises(
        TranslationError, match=r"istio/x.yaml: VirtualService meshcalc/x: spec.http\[0\].timeout: must be a duration"
    ):
        duration(text, "spec.http[0].timeout", ORIGIN)
