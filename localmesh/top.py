"""``python -m localmesh top``: the running mesh per workload and version, a frame a second.

Like ``linkerd viz top``/``stat``, without a browser: requests per second, success share, retries,
ejections and circuit-breaker overflows from the Envoys' admin stats and the replicas' /metrics;
p50/p99 and the SLOs' burn rates, budget and alerts from the local Prometheus, when the mesh has
one. Gathering is here (I/O); what a frame says and how it looks is ``localmesh.topview`` (pure).
"""

from __future__ import annotations

import http.client
import json
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Mapping

from rich.console import Console
from rich.live import Live

from localmesh.envoy import EnvoyProcess
from localmesh.loader import Layout, load_kustomization
from localmesh.mesh import INGRESS as INGRESS_ENVOY
from localmesh.observe import scrape_url
from localmesh.prometheus import query_vector
from localmesh.topview import (
    INGRESS,
    Counters,
    FromPrometheus,
    Reading,
    RowKey,
    Snapshot,
    app_counters,
    by_row,
    envoy_counters,
    percentiles,
    render,
    slo_states,
    snapshot,
)
from localmesh.workloads import workload

REFRESH_SECONDS = 1.0
# Rates over the last few seconds of readings: steadier than one second's, still live.
RATE_WINDOW_SECONDS = 5.0
# A source slower than this is reported as not answering: the frame does not wait for it.
SOURCE_TIMEOUT_SECONDS = 1.0
# Prometheus' percentiles over this window: at make up's 5 s scrape interval, six scrapes.
PERCENTILE_WINDOW = "30s"
PUBLIC = 'route!~"/healthz|/readyz|/metrics"'
APP_QUANTILE = "histogram_quantile({q}, sum by (app, version, le) (rate(http_server_request_duration_seconds_bucket{{" + PUBLIC + "}}[{w}])))"
# The ingress Envoy's latency, as the local Prometheus names it for the SLO rules (localmesh/prometheus.py).
INGRESS_QUANTILE = (
    "histogram_quantile({q}, sum by (le) (rate(istio_request_duration_milliseconds_bucket"
    '{{reporter="source", source_workload="istio-ingressgateway"}}[{w}])))'
)
NO_PROMETHEUS = (
    "No Prometheus in this mesh (apt-get install prometheus, then make up again): "
    "no p50/p99 and no SLO burn rates, budget or alerts; rates, success, retries, ejections, "
    "overflows and the burn column come from the Envoys and the replicas."
)


def rows_of(root: Path, state: Mapping) -> tuple[dict[str, RowKey], tuple[RowKey, ...]]:
    """Each pod's row (its Deployment's app and version labels, from the manifests), and the rows in
    the order traffic reaches them: the ingress, the workloads with a sidecar (they call the others),
    the rest."""
    layout = Layout(root)
    workloads = [workload(r, set()) for r in load_kustomization(layout.k8s, layout.root) if r.kind == "Deployment"]
    pod_row = {}
    for w in workloads:
        key = RowKey(w.labels.get("app", w.name), w.labels.get("version", ""))
        for index in range(w.replicas):
            pod_row[w.pod(index)] = key
    callers = {pod_row.get(pod) for pod in (state.get("plan") or {}).get("sidecars", {})}
    ordered = sorted(set(pod_row.values()), key=lambda key: (key not in callers, key))
    return pod_row, (INGRESS, *ordered)


def _envoy_stats(run_dir: Path, name: str, admin_port: int) -> dict[str, float] | None:
    """An Envoy's outbound cluster stats; None when its admin does not answer."""
    envoy = EnvoyProcess(name, Path(run_dir) / "envoy", admin_port)
    answer = envoy.admin("/stats?format=json&filter=%5Ecluster%5C.outbound%5C%7C")
    if answer is None or answer[0] != 200:
        return None
    return {entry["name"]: entry["value"] for entry in json.loads(answer[1]).get("stats", []) if "value" in entry}


def read_mesh(state: Mapping, pod_row: Mapping[str, RowKey], rows: tuple[RowKey, ...], pool: ThreadPoolExecutor) -> Reading:
    """Every replica's /metrics and every Envoy's stats, read at once."""
    versions: dict[str, list[str]] = {}
    for key in rows:
        versions.setdefault(key.app, []).append(key.version)
    run_dir = Path(state["run_dir"])
    apps = {
        pod: pool.submit(scrape_url, info["url"], SOURCE_TIMEOUT_SECONDS)
        for pod, info in state["services"].items()
        if pod in pod_row
    }
    envoys = {
        name: pool.submit(_envoy_stats, run_dir, name, info["admin_port"]) for name, info in state["envoys"].items()
    }
    sources: dict[str, dict[RowKey, Counters]] = {}
    pods: dict[RowKey, list[int]] = {}
    down = []
    for pod, future in apps.items():
        key = pod_row[pod]
        counted = pods.setdefault(key, [0, 0])
        counted[1] += 1
        try:
            sources[pod] = {key: app_counters(future.result())}
            counted[0] += 1
        except (OSError, RuntimeError, ValueError, http.client.HTTPException) as error:
            down.append(f"{pod}: its /metrics does not answer ({error}): its row counts the others")
    for name, future in envoys.items():
        stats = future.result()
        is_ingress = name == INGRESS_ENVOY
        if is_ingress:
            pods[INGRESS] = [0 if stats is None else 1, 1]
        if stats is None:
            down.append(f"Envoy {name}: its admin does not answer: its retries, ejections and overflows are not counted")
            continue
        sources[f"envoy {name}"] = envoy_counters(stats, versions, INGRESS if is_ingress else None)
    return Reading(
        at=time.monotonic(),
        sources=sources,
        rows=rows,
        pods={key: (a, t) for key, (a, t) in pods.items()},
        down=tuple(down),
        scenario=state.get("scenario", "base"),
    )


def read_prometheus(url: str, pool: ThreadPoolExecutor) -> FromPrometheus:
    """Percentiles per row and the SLOs' state; OSError when Prometheus does not answer."""
    window = PERCENTILE_WINDOW
    queries = {
        "app50": APP_QUANTILE.format(q=0.5, w=window),
        "app99": APP_QUANTILE.format(q=0.99, w=window),
        "in50": INGRESS_QUANTILE.format(q=0.5, w=window),
        "in99": INGRESS_QUANTILE.format(q=0.99, w=window),
        "objectives": "slo:objective:ratio",
        "burns": '{__name__=~"slo:burn_rate:ratio_rate.+"}',
        "budgets": "slo:error_budget_remaining:ratio",
        "alerts": 'ALERTS{slo!=""}',
    }
    futures = {name: pool.submit(query_vector, url, expression, SOURCE_TIMEOUT_SECONDS * 2) for name, expression in queries.items()}
    answers = {name: future.result() for name, future in futures.items()}
    p50 = {**by_row(answers["app50"], 1000.0), **by_row(answers["in50"], row=INGRESS)}
    p99 = {**by_row(answers["app99"], 1000.0), **by_row(answers["in99"], row=INGRESS)}
    slos = slo_states(answers["objectives"], answers["burns"], answers["budgets"], answers["alerts"])
    return FromPrometheus(percentiles(p50, p99), slos)


class Top:
    """Readings of one running mesh, the last few seconds of them, and the frame they give."""

    def __init__(self, state_of: Callable[[], Mapping], budget: float):
        self.state_of = state_of  # the running state, read again each frame (a scenario may switch)
        self.budget = budget
        state = state_of()
        self.pod_row, self.rows = rows_of(Path(state["root"]), state)
        self.readings: deque[Reading] = deque()
        self.pool = ThreadPoolExecutor(max_workers=16)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def frame(self) -> Snapshot:
        state = self.state_of()  # MeshNotRunning when it stopped
        reading = read_mesh(state, self.pod_row, self.rows, self.pool)
        self.readings.append(reading)
        while len(self.readings) > 2 and reading.at - self.readings[1].at >= RATE_WINDOW_SECONDS:
            self.readings.popleft()
        notes = []
        prometheus = None
        url = state.get("prometheus_url")
        if not url:
            notes.append(NO_PROMETHEUS)
        else:
            try:
                prometheus = read_prometheus(url, self.pool)
            except OSError as error:
                notes.append(f"Prometheus at {url} does not answer ({error}): no p50/p99 and no SLO burn rates, budget or alerts.")
        return snapshot(self.readings[0], reading, self.budget, prometheus, notes)


def run(top: Top, console: Console, once: bool, seconds: float | None) -> int:
    """Frames until Ctrl-C, or for ``seconds``, or one (``once``: after a first second of counting)."""
    if once:
        top.frame()
        time.sleep(REFRESH_SECONDS)  # the rates' window: two readings a second apart
        console.print(render(top.frame()))
        return 0
    deadline = None if seconds is None else time.monotonic() + seconds
    with Live(render(top.frame()), console=console, auto_refresh=False, transient=False) as live:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(REFRESH_SECONDS)
            live.update(render(top.frame()), refresh=True)
    return 0
