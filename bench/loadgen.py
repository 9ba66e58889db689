"""The load generator: Debian's wrk, with bench/wrk.lua for POST JSON and a fixed rate.

Why wrk for both measurements:

- Saturation: wrk is C on epoll, with keep-alive; per request it costs a
  fraction of what a Go (hey) or Node (autocannon) client costs, and on two
  cores whatever the generator burns is taken from the servers.
- Fixed rate: wrk2, vegeta and oha (the open-loop generators) are neither in
  Debian nor on PyPI. hey is in Debian (``-q`` paces each worker) but writes
  latencies rounded to 0.1 ms, too coarse for a 0.25 ms budget. So wrk.lua paces
  wrk itself on an absolute schedule (see its header); latencies keep wrk's
  microsecond histogram. Like any closed-loop pacing, a request that finds every
  connection busy goes out late: ``WrkResult.rate_shortfall`` says by how much,
  and the runner flags a run that fell short.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("wrk.lua")
INSTALL_HINT = "wrk is not installed: apt-get install wrk"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    non2xx: int
    socket_errors: int
    timeouts: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    target_rate: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors + self.timeouts

    @property
    def rate_shortfall(self) -> float:
        """How far below the target rate the run stayed (0.02 is 2%); 0 without a target."""
        if not self.target_rate:
            return 0.0
        return max(0.0, 1 - self.rps / self.target_rate)

    def as_dict(self) -> dict:
        return {**asdict(self), "rps": round(self.rps, 1)}


def parse_summary(stdout: str) -> dict:
    """The BENCH line that wrk.lua's done() writes. Pure."""
    for line in stdout.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[len("BENCH "):])
    raise ValueError(f"no BENCH line in wrk's output:\n{stdout[-2000:]}")


def result_of(summary: dict, target_rate: float | None = None) -> WrkResult:
    ms = lambda key: summary[key] / 1000.0  # noqa: E731
    return WrkResult(
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        non2xx=summary["non2xx"],
        socket_errors=summary["socket_errors"],
        timeouts=summary["timeouts"],
        p50_ms=ms("p50_us"),
        p90_ms=ms("p90_us"),
        p99_ms=ms("p99_us"),
        max_ms=ms("max_us"),
        mean_ms=ms("mean_us"),
        target_rate=target_rate,
    )


def wrk_command(
    url: str, seconds: float, connections: int, binary: str = "wrk", headers: dict[str, str] | None = None
) -> list[str]:
    """One wrk thread: enough for tens of thousands of requests per second here. Pure."""
    return [
        binary,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA_SCRIPT),
        *(option for name, value in (headers or {}).items() for option in ("-H", f"{name}: {value}")),
        url,
    ]


def run_wrk(
    url: str,
    seconds: float,
    connections: int = 16,
    rate: float | None = None,
    cpus: set[int] | None = None,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    """POST ``url`` for ``seconds``, as fast as it answers, or at ``rate`` per second."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError(INSTALL_HINT)
    env = {k: v for k, v in os.environ.items() if k != "BENCH_RATE"}
    if rate:
        env["BENCH_RATE"] = f"{rate:.3f}"
    completed = subprocess.run(
        wrk_command(url, seconds, connections, binary, headers),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        # wrk stops itself at -d; this bounds a wedged run.
        timeout=seconds + 30,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk exited {completed.returncode}: {completed.stderr.strip() or completed.stdout[-500:]}")
    return result_of(parse_summary(completed.stdout), rate)
