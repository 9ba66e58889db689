"""Helpers of the local mesh's end-to-end tests: meshes, bounded load, intervals, stats, access logs."""

from __future__ import annotations

import dataclasses
import os
import secrets
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from localmesh import observe
from localmesh.loader import Layout
from localmesh.mesh import Mesh
from localmesh.observe import binomial_interval, subset_cluster
from scenarios.catalogue import catalogue
from scenarios.policy import CalculatorPolicy, calculator_policy
from tests.support import ROOT, post_json

SIDECARS = ("gateway-0-sidecar", "gateway-1-sidecar")
CALCULATION = {"operacion": "sumar", "numero1": 2, "numero2": 3}


# -- meshes ----------------------------------------------------------------------------------------

# The scenarios' catalogue: the faults and numbers these tests share with `make demo`.
SCENARIOS = catalogue(ROOT)


def with_faults(mesh: Mesh, *scenarios: str) -> Mesh:
    """The mesh's replicas given these catalogue scenarios' faults at run time (no restart), nothing else."""
    from scenarios.local import set_faults

    faults = {pod: fault for name in scenarios for pod, fault in SCENARIOS[name].faults.items()}
    scenario = dataclasses.replace(SCENARIOS["base"], faults=faults)
    set_faults({pod: f"http://127.0.0.1:{port}" for pod, port in mesh.plan.admin.items()}, scenario)
    return mesh


def policy_of(*files: str) -> CalculatorPolicy:
    """The calculator's policy numbers with these istio/scenarios/ files applied: read from the YAML, never copied."""
    return calculator_policy(Layout(ROOT), files)



@contextmanager
def policy(mesh: Mesh, *files: str) -> Iterator[Mesh]:
    """The mesh with istio/scenarios/ files applied over the base, and the base restored afterwards."""
    mesh.switch(files, "+".join(files))
    try:
        yield mesh
    finally:
        mesh.switch((), "base")


# -- load ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One client request through the ingress, as the client saw it."""

    status: int
    headers: dict
    body: object
    seconds: float
    trace_id: str
    span_id: str  # the client's, the parent it gave in traceparent

    @property
    def version(self) -> str | None:
        return self.body.get("version") if isinstance(self.body, dict) else None


def calculate(mesh: Mesh, headers: dict | None = None, timeout: float = 10.0) -> Answer:
    """POST /calcular through the ingress with a fresh trace id, which the access logs record."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = {"traceparent": f"00-{trace_id}-{span_id}-01"}
    started = time.monotonic()
    status, response_headers, body = post_json(
        f"{mesh.ingress_url}/calcular", CALCULATION, {**traceparent, **(headers or {})}, timeout=timeout
    )
    return Answer(status, response_headers, body, time.monotonic() - started, trace_id, span_id)


def load(
    mesh: Mesh, count: int, concurrency: int = 8, headers: dict | None = None, deadline: float = 60.0
) -> list[Answer]:
    """``count`` requests from ``concurrency`` threads; none is started after ``deadline`` seconds."""
    answers: list[Answer] = []
    lock = threading.Lock()
    started = time.monotonic()
    remaining = iter(range(count))

    def worker():
        while time.monotonic() - started < deadline:
            with lock:
                if next(remaining, None) is None:
                    return
            answer = calculate(mesh, headers)
            with lock:
                answers.append(answer)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for running in [pool.submit(worker) for _ in range(concurrency)]:
            running.result()
    assert len(answers) == count, f"only {len(answers)} of {count} requests within {deadline:.0f}s"
    return answers


def versions(answers: list[Answer]) -> Counter:
    return Counter(a.version for a in answers)


# -- shares -------------------------------------------------------------------------------------------


def assert_share(count: int, n: int, p: float, what: str) -> None:
    low, high = binomial_interval(p, n)
    assert low <= count <= high, (
        f"{what}: {count} of {n} ({count / n:.1%}), outside the 99.9% interval "
        f"[{low:.1f}, {high:.1f}] of a share of {p:.0%}"
    )


# -- Envoy stats -----------------------------------------------------------------------------------


def stat(mesh: Mesh, name: str, envoys: tuple[str, ...] = SIDECARS) -> int:
    """One counter or gauge, summed over ``envoys`` (by default the gateway's two sidecars)."""
    return sum(mesh.envoys[envoy].stats(name).get(name, 0) for envoy in envoys)


def cluster_stat(mesh: Mesh, subset: str, name: str, envoys: tuple[str, ...] = SIDECARS) -> int:
    return stat(mesh, f"cluster.{subset_cluster(subset)}.{name}", envoys)


# -- the services' own metrics ---------------------------------------------------------------------


def calcular_requests(service) -> Counter:
    """POST /calcular requests a replica answered, by status, from its own /metrics."""
    return observe.calcular_requests(service.url)


def calcular_requests_of(mesh: Mesh, deployment: str) -> Counter:
    """The same, summed over a Deployment's replicas."""
    total = Counter()
    for service in mesh.pods_of(deployment):
        total.update(calcular_requests(service))
    return total


# -- access logs -----------------------------------------------------------------------------------


def access_log(mesh: Mesh, proxy: str) -> list[dict]:
    """Every line an Envoy ("ingress", "gateway-0-sidecar", ...) has written to its JSON access log."""
    return observe.read_access_log(observe.access_log_path(mesh.options.run_dir, proxy))[0]


def sidecar_entries(mesh: Mesh, trace_ids) -> dict[str, dict]:
    """The gateway sidecars' access-log entry of each trace (the gateway's call to the calculator)."""
    wanted = set(trace_ids)
    found = {}
    for sidecar in SIDECARS:
        for entry in access_log(mesh, sidecar):
            trace_id = (entry.get("traceparent") or "").split("-")[1:2]
            if trace_id and trace_id[0] in wanted:
                found[trace_id[0]] = entry
    return found


def host_of(service) -> str:
    """A replica as Envoy names an upstream host: "127.0.0.1:PORT"."""
    return f"{service.spec.host}:{service.spec.port}"


# -- processes -------------------------------------------------------------------------------------


def processes_in_sessions(session_ids: set[int]) -> list[tuple[int, str]]:
    """Live processes (zombies excepted) whose session is one of ``session_ids``: (pid, command)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat_line = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        command, _, rest = stat_line.rpartition(")")
        fields = rest.split()
        state, session = fields[0], int(fields[3])
        if state != "Z" and (session in session_ids or int(entry) in session_ids):
            found.append((int(entry), command.partition("(")[2]))
    return found
