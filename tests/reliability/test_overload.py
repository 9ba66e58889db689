"""Overload at 5x capacity through the local mesh: the ingress's circuit breaker (DestinationRule
gateway) sheds the excess at once with 503 and x-envoy-overloaded, the apps answer no 5xx, memory
stays bounded, and everything succeeds again within 5 s of the end.

Capacity is measured first, on this machine as it is: the throughput of as many clients as the
gateways have threads (2 replicas x 8), each sending its next request when its last is answered.
The overload then offers 5 times that rate from 5 times as many clients, each paced.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter

import pytest

from localmesh.load import CALCULATION, Sample, parse_hey_csv
from localmesh.observe import flags_of
from tests.localmesh.e2e.support import access_log
from tests.reliability.support import (
    Load,
    MemorySampler,
    memory_limits,
    mesh_pids,
    percentile,
    record,
    renice,
    sized,
)
from tests.support import running_mesh, scrape, statuses
from tests.tools import needs_hey

pytestmark = [
    pytest.mark.processes,
    needs_hey,
]

GATEWAY_THREADS = 2 * 8  # replicas x GUNICORN_THREADS
OVERLOAD = 5
# On a cluster the ingress gateway and the clients run on CPU of their own (a pod's CPU request
# is its cgroup weight); here they share 2 cores with 5 busy replicas: the same priority, by nice.
PRIORITY = -10
ADMITTED = 32 + 8  # istio/gateway-destinationrule.yaml: maxConnections + http1MaxPendingRequests
# hey's paced workers reach about half their rate (each waits for its answers, and opens a new
# connection after a shed 503): ask twice the bound, and 10% more (the full run of 2026-11-26
# offered 4.999x when asked exactly 2x).
ASKED = 2.2
MiB = 2**20


def hey(url: str, seconds: float, clients: int, rate: float | None = None) -> list[Sample]:
    """POST /calcular from ``clients`` workers for ``seconds`` (each paced to ``rate``/s): one row a request.

    Its own timings are not the mesh's: it opens a new connection after each shed 503 (Envoy
    closes a connection whose request body it answered before reading); a probe client times them too.
    """
    command = ["nice", "-n", str(PRIORITY), "hey", "-z", f"{seconds}s", "-c", str(clients), "-t", "10", "-m", "POST", "-T", "application/json"]
    command += ["-d", json.dumps(CALCULATION)]
    command += (["-q", f"{rate:.2f}"] if rate else []) + ["-o", "csv", f"{url}/calcular"]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    return parse_hey_csv(output)  # the demo's reader of hey's rows, the one place for hey's format


def app_5xx(mesh) -> dict[str, int]:
    """5xx answers each replica has counted on any route, from its own /metrics."""
    counts = {}
    for pod, service in mesh.services.items():
        counts[pod] = sum(
            int(value)
            for (name, labels), value in scrape(service).items()
            if name == "http_server_requests_total" and dict(labels)["status"].startswith("5")
        )
    return counts


def test_overload_is_shed_fast_and_the_mesh_recovers(tmp_path):
    seconds = sized(10, 30)
    with running_mesh(tmp_path) as mesh:
        renice(mesh.envoys["ingress"].process.pid, PRIORITY)
        hey(mesh.ingress_url, 2, 8)  # warm: connections, caches
        window = sized(5, 10)
        measured = hey(mesh.ingress_url, window, GATEWAY_THREADS)
        capacity = len(measured) / window
        assert {s.status for s in measured} == {200}

        before = app_5xx(mesh)
        log_start = len(access_log(mesh, "ingress"))
        # Up to ADMITTED clients wait on admitted requests, paced or not: the others make up the rate.
        clients = 32 * GATEWAY_THREADS
        with MemorySampler(mesh_pids(mesh)) as memory:
            begin = time.monotonic()
            # One client more, sequential, on one keep-alive connection: its 503s are timed exactly.
            probe = Load(mesh.ingress_url, seconds=seconds - 1, concurrency=1, nice=PRIORITY, first_id=10**6).start()
            overload = hey(mesh.ingress_url, seconds, clients, rate=ASKED * OVERLOAD * capacity / (clients - ADMITTED))
            end = time.monotonic()
            probed = probe.wait()
            recovery = Load(mesh.ingress_url, seconds=6, concurrency=8).run()
        after = app_5xx(mesh)
        shed_in_envoy = [e for e in access_log(mesh, "ingress")[log_start:] if "UO" in flags_of(e)]

    counts = Counter(s.status for s in overload)
    offered = len(overload) / seconds
    shed = [s for s in overload if s.status == 503]
    served = [s for s in overload if s.status == 200]
    hey_p99_ms = percentile([s.seconds for s in shed], 0.99) * 1000 if shed else None
    probe_shed = [r for r in probed if r.status == 503]
    shed_p99_ms = percentile([r.seconds for r in probe_shed], 0.99) * 1000 if probe_shed else None
    envoy_p99_ms = percentile([int(e["duration"]) for e in shed_in_envoy], 0.99) if shed_in_envoy else None
    failures_after = [r for r in recovery if r.status != 200]
    recovered_in = max((r.started + r.seconds - end for r in failures_after), default=0.0)
    limits = memory_limits()
    peaks = {name: memory.peak(name, begin, end) for name in memory.samples}
    halfway = begin + (end - begin) / 2
    growth = {name: memory.peak(name, halfway, end) - memory.peak(name, begin, halfway) for name in memory.samples}
    record(
        "overload",
        capacity_rps=round(capacity, 1),
        offered_rps=round(offered, 1),
        seconds=seconds,
        clients=clients,
        requests=len(overload),
        served=len(served),
        goodput_rps=round(len(served) / seconds, 1),
        shed=len(shed),
        probe_statuses=dict(statuses(probed)),
        shed_p99_ms=round(shed_p99_ms, 1) if shed_p99_ms is not None else None,
        shed_p99_ms_hey=round(hey_p99_ms, 1) if hey_p99_ms is not None else None,
        shed_p50_ms_hey=round(percentile([s.seconds for s in shed], 0.5) * 1000, 1) if shed else None,
        shed_over_20ms_hey=f"{sum(s.seconds > 0.02 for s in shed) / max(1, len(shed)):.2%}",
        shed_over_20ms_envoy=sum(int(e["duration"]) > 20 for e in shed_in_envoy),
        shed_p99_ms_envoy=envoy_p99_ms,
        statuses=dict(counts),
        app_5xx={pod: after[pod] - before[pod] for pod in after},
        peak_rss_mib={name: round(peak / MiB, 1) for name, peak in peaks.items()},
        rss_growth_second_half_mib={name: round(g / MiB, 1) for name, g in growth.items()},
        recovery_statuses=dict(statuses(recovery)),
        recovered_within_s=round(recovered_in, 2),
    )
    # Really an overload, and the excess shed. The full profile holds the 5x; the quick one,
    # in CI where hey shares 2 cores with the mesh it loads, asks 3x (it reached 3.9x to 5.4x here).
    assert offered >= sized(quick=3, full=OVERLOAD) * capacity
    assert len(shed) > 0.3 * len(overload)
    # Every failure is the breaker's fast 503, which never reached an app.
    assert counts.keys() <= {200, 503}
    assert all(r.overloaded for r in probe_shed) and statuses(probed).keys() <= {200, 503}
    assert len(shed_in_envoy) == len(shed) + len(probe_shed)  # each 503 was the ingress's overflow (UO)
    # Envoy's own time for each shed 503 (its access log): the breaker's answer is immediate. The
    # probe's, which adds the kernel and the scheduler of a shared 2-core machine, is recorded.
    assert envoy_p99_ms <= 20
    assert after == before, "an app answered 5xx"
    # Memory: within the manifests' limits, and not growing in the second half of the overload.
    for pod, service in mesh.services.items():
        assert peaks[pod] <= limits[pod.rsplit("-", 1)[0]], (pod, peaks[pod])
    assert all(g <= 16 * MiB for g in growth.values()), growth
    assert recovered_in <= 5.0
    assert [r for r in recovery if r.started - end > 5.0 and r.status != 200] == []
