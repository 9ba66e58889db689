"""What the mesh saw: Envoy access logs, the replicas' own request counters, binomial intervals.

The scenario runner (``scenarios``) and the end-to-end tests read the
mesh through these, so a demo's verdict and a test's assertion count the same
things the same way.
"""

from __future__ import annotations

import http.client
import json
import math
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

NAMESPACE = "meshcalc"
# Two-sided 99.9%: P(|Z| > 3.2905) = 0.001.
Z_999 = 3.2905
# How much shorter than a timer's setting Envoy's %DURATION% can read: Envoy arms a timer (a fault
# delay) from its event loop's clock as cached when the loop woke, and starts a request's clock
# when it reads the request, later in that iteration; whole milliseconds on top. Seen: 1997 ms for
# a 2 s delay on a busy 2-core machine.
ENVOY_TIMER_SLACK_MS = 10


# -- binomial intervals ----------------------------------------------------------------------------


def binomial_interval(p: float, n: int, z: float = Z_999) -> tuple[float, float]:
    """The counts out of ``n`` a share ``p`` gives with probability 99.9% (normal approximation).

    A count inside it is a count whose Wilson score interval holds ``p``. For
    p = 0 or 1 it is the exact count.
    """
    half = z * math.sqrt(n * p * (1 - p))
    return n * p - half, n * p + half


def wilson_interval(count: int, n: int, z: float = Z_999) -> tuple[float, float]:
    """The shares consistent with ``count`` of ``n`` (Wilson score interval, 99.9% by default)."""
    if n <= 0:
        return 0.0, 1.0
    share = count / n
    denominator = 1 + z * z / n
    centre = (share + z * z / (2 * n)) / denominator
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


# -- Envoy names -----------------------------------------------------------------------------------


def subset_cluster(subset: str, service: str = "calculator") -> str:
    """The Envoy cluster of a DestinationRule subset, as istiod names it."""
    return f"outbound|80|{subset}|{service}.{NAMESPACE}.svc.cluster.local"


def subset_of(cluster: str | None) -> str | None:
    """The subset of an istiod cluster name ("outbound|80|v1|calculator...": "v1"), or None."""
    parts = (cluster or "").split("|")
    return parts[2] or None if len(parts) == 4 else None


# -- access logs -----------------------------------------------------------------------------------


def access_log_path(run_dir: Path, proxy: str) -> Path:
    """Where the local mesh's Envoy ``proxy`` ("ingress", "gateway-0-sidecar") writes its JSON access log."""
    return Path(run_dir) / "logs" / f"{proxy}-access.log"


def read_access_log(path: Path, offset: int = 0) -> tuple[list[dict], int]:
    """The complete JSON lines of an access log from byte ``offset``, and the offset after them.

    A line Envoy is still writing (no newline yet) is left for the next read.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    complete = data[: data.rfind(b"\n") + 1]
    entries = [json.loads(line) for line in complete.splitlines() if line.strip()]
    return entries, offset + len(complete)


class AccessLogTail:
    """The lines an access log gains from now on: ``read()`` returns every one since creation."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.start = self.path.stat().st_size if self.path.exists() else 0

    def read(self) -> list[dict]:
        return read_access_log(self.path, self.start)[0]

    def count(self) -> int:
        """Complete lines since creation, without decoding them (for a progress display)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.start)
                return handle.read().count(b"\n")
        except FileNotFoundError:
            return 0


def flags_of(entry: dict) -> list[str]:
    """An entry's Envoy response flags ("-" when none), e.g. ["UO"] or ["URX", "UF"]."""
    return [flag for flag in str(entry.get("response_flags") or "-").split(",") if flag]


# -- the services' own metrics ---------------------------------------------------------------------


def scrape_url(url: str, timeout: float = 5.0) -> dict:
    """Every sample of ``url``/metrics as {(name, sorted labels): value}."""
    host, _, port = url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}/metrics answered {response.status}")
    finally:
        connection.close()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def calcular_requests(url: str, timeout: float = 5.0) -> Counter:
    """POST /calcular requests a replica answered, by status, from its own /metrics.

    The app counts a request before sending its answer, so once a client (or
    Envoy) has an answer, this count has it.
    """
    counts = Counter()
    for (name, labels), value in scrape_url(url, timeout).items():
        labels = dict(labels)
        if name == "http_server_requests_total" and labels.get("route") == "/calcular":
            counts[int(labels["status"])] += int(value)
    return counts
