"""Bounded load through the ingress, with hey.

Why hey (Debian package ``hey``, rakyll/hey 0.1.4; ``apt-get install hey``):

- It is count-based (``-n``): every request it starts, it waits for. A
  scenario's verdict compares what the clients saw with what the replicas and
  the Envoys counted, request for request (each 503 of a failing replica
  retried or seen by a client); a duration-based generator such as wrk cuts
  the requests in flight at its deadline, and those still reach the replicas.
- ``-o csv`` writes one row per request: latency and status code, from which
  the runner computes p50/p99 and the status counts itself.
- ``-q`` paces each worker, for a scenario that must last a while (a replica
  killed mid-load); ``-t`` bounds each request.

What it does not give, the mesh does: the answering version and Envoy's
response flags come from the access logs (``localmesh.observe``). Transport
errors are not in the CSV: they are the requests sent less the rows.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable

CALCULATION = {"operacion": "sumar", "numero1": 2, "numero2": 3}
INSTALL_HINT = "hey is not installed: apt-get install hey (Debian/Ubuntu), or go install github.com/rakyll/hey@latest"


@dataclass(frozen=True)
class LoadSpec:
    """``requests`` POST /calcular from ``concurrency`` workers; ``rate`` paces each worker (per second)."""

    requests: int
    concurrency: int = 8
    rate: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout_seconds: int = 10

    def __post_init__(self):
        if self.concurrency < 1 or self.requests < self.concurrency:
            raise ValueError(f"{self.requests} requests from {self.concurrency} workers: need requests >= workers >= 1")
        if self.requests % self.concurrency:
            # hey sends requests // concurrency per worker: say so rather than send fewer.
            raise ValueError(f"{self.requests} requests is not a multiple of {self.concurrency} workers")

    def describe(self) -> str:
        parts = [f"{self.requests} requests", f"{self.concurrency} concurrent"]
        if self.rate:
            parts.append(f"at most {self.rate * self.concurrency:g}/s")
        parts += [f"{k}: {v}" for k, v in self.headers.items()]
        return ", ".join(parts)

    def bound_seconds(self) -> float:
        """The longest the load may take: every request at its timeout, in turn per worker."""
        per_worker = self.requests // self.concurrency
        paced = per_worker / self.rate if self.rate else 0.0
        return paced + per_worker * self.timeout_seconds


@dataclass(frozen=True)
class Sample:
    """One request as hey saw it."""

    seconds: float  # from sending to the last byte of the answer
    status: int
    offset: float  # seconds from the start of the load


@dataclass(frozen=True)
class LoadResult:
    requests: int  # sent
    samples: list[Sample]
    seconds: float  # wall time of the load

    @property
    def errors(self) -> int:
        """Requests without an HTTP answer (refused, reset, timed out at the client)."""
        return self.requests - len(self.samples)


def hey_binary() -> str | None:
    return shutil.which("hey")


def hey_command(url: str, spec: LoadSpec, binary: str = "hey") -> list[str]:
    """The hey command line of a load. Pure."""
    command = [binary, "-n", str(spec.requests), "-c", str(spec.concurrency)]
    if spec.rate:
        command += ["-q", f"{spec.rate:g}"]
    command += ["-t", str(spec.timeout_seconds), "-m", "POST", "-T", "application/json"]
    command += ["-d", json.dumps(CALCULATION, separators=(",", ":"))]
    for name, value in spec.headers.items():
        command += ["-H", f"{name}: {value}"]
    return command + ["-o", "csv", f"{url.rstrip('/')}/calcular"]


def parse_hey_csv(text: str) -> list[Sample]:
    """hey's ``-o csv`` rows (response-time, ..., status-code, offset). Pure."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0].split(",")
    try:
        latency, status, offset = header.index("response-time"), header.index("status-code"), header.index("offset")
    except ValueError:
        raise ValueError(f"not hey's CSV output: {lines[0]!r}") from None
    samples = []
    for line in lines[1:]:
        values = line.split(",")
        samples.append(Sample(float(values[latency]), int(values[status]), float(values[offset])))
    return samples


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile (``fraction`` 0.5 is the median), None of nothing. Pure."""
    if not values:
        return None
    ordered = sorted(values)
    # ceil(fraction * n), rounded first: 0.99 * 100 is 99.00000000000001 in floating point.
    rank = max(1, math.ceil(round(fraction * len(ordered), 9)))
    return ordered[min(rank, len(ordered)) - 1]


def run_load(
    url: str,
    spec: LoadSpec,
    on_tick: Callable[[float], None] | None = None,
    tick_seconds: float = 0.25,
) -> LoadResult:
    """Run hey to the end; ``on_tick(elapsed)`` is called while it runs (a progress display).

    Bounded: hey is ended if it outlives ``spec.bound_seconds()`` plus a margin.
    """
    binary = hey_binary()
    if binary is None:
        raise RuntimeError(INSTALL_HINT)
    started = time.monotonic()
    deadline = started + spec.bound_seconds() + 30
    process = subprocess.Popen(
        hey_command(url, spec, binary), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                # Waiting on hey itself; the timeout only paces the progress display.
                out, err = process.communicate(timeout=tick_seconds)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    process.kill()
                    process.communicate()
                    raise RuntimeError(f"hey still running after {deadline - started:.0f} s: ended") from None
                if on_tick:
                    on_tick(time.monotonic() - started)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"hey exited {process.returncode}: {err.decode(errors='replace').strip()}")
    return LoadResult(spec.requests, parse_hey_csv(out.decode()), time.monotonic() - started)
