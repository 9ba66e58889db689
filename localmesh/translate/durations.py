"""Istio durations ("2s", "0.5s", "100ms", "1m30s") to Envoy's JSON durations ("2s", "0.500s")."""

from __future__ import annotations

import re
from decimal import Decimal

from localmesh.translate.errors import Origin

_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_SECONDS = {
    "h": Decimal(3600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("0.001"),
    "us": Decimal("0.000001"),
    "µs": Decimal("0.000001"),
    "ns": Decimal("0.000000001"),
}


def parse_seconds(text: str) -> Decimal:
    """The duration in seconds, to the nanosecond (protobuf's precision); ValueError if it is none."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"must be a duration such as '1s' or '100ms', not {text!r}")
    position, total = 0, Decimal(0)
    while position < len(text):
        part = _PART.match(text, position)
        if part is None:
            raise ValueError(f"must be a duration such as '1s' or '100ms', not {text!r}")
        total += Decimal(part.group(1)) * _SECONDS[part.group(2)]
        position = part.end()
    return total.quantize(Decimal("0.000000001"))


def seconds(text: str, path: str, origin: Origin) -> Decimal:
    """``parse_seconds`` of a manifest's field: an error names the file, resource and field."""
    try:
        return parse_seconds(text)
    except ValueError as error:
        raise origin.invalid(path, str(error)) from None


def envoy_duration(value: Decimal) -> str:
    """Protobuf's canonical JSON form: 0, 3, 6 or 9 fractional digits."""
    whole, nanos = divmod(int(value * 1_000_000_000), 1_000_000_000)
    if nanos == 0:
        return f"{whole}s"
    for digits, scale in ((3, 1_000_000), (6, 1_000)):
        if nanos % scale == 0:
            return f"{whole}.{nanos // scale:0{digits}d}s"
    return f"{whole}.{nanos:09d}s"


def duration(text: str, path: str, origin: Origin) -> str:
    return envoy_duration(seconds(text, path, origin))
