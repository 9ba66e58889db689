"""Durations as Istio, Envoy and Marathon write them, in seconds, to compare one with another."""

from __future__ import annotations

from localmesh.translate.durations import parse_seconds


def seconds(value: str | int | float) -> float:
    """'1s', '500ms', '1m30s' (the local mesh's Istio parser) or a number of seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    return float(parse_seconds(str(value).strip()))
