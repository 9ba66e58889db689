"""``python -m bench``: what the mesh and the telemetry cost, measured side by side on this machine.

    python -m bench            the full run (make bench): bench/results.json, bench/latency.png,
                               and the generated part of BENCHMARKS.md
    python -m bench --quick    the same steps on small numbers (CI smoke), written to
                               .run/bench-quick/ unless --out-dir says otherwise

Every measurement is repeated in rounds; within a round the paths take turns
(in an order that rotates), so a burst of load from another program on the
machine falls on every path alike. Reported values are medians over rounds,
with their spread, and the share of the machine's CPU that other programs used
meanwhile.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from prometheus_client.parser import text_string_to_metric_families

from bench import hops, procstat
from bench.loadgen import WrkResult, run_wrk
from bench.topology import PATHS, ROOT, Topology
from localmesh.processes import free_port

TELEMETRY = ("calculator-telemetry-on", "calculator-telemetry-off")
CALCULATION = b'{"operacion": "sumar", "numero1": 2, "numero2": 3}'


@dataclass(frozen=True)
class Plan:
    """How long and how often: the full run and the quick one differ only here."""

    name: str
    warmup_s: float
    saturation_s: float
    fixed_s: float
    rounds: int
    connections: int
    scrape_requests: int
    scrapes: int
    cold_starts: int
    pinned: bool  # also measure saturation with the generator and the servers on separate cores


FULL = Plan("full", warmup_s=5, saturation_s=10, fixed_s=10, rounds=5, connections=16,
            scrape_requests=100_000, scrapes=20, cold_starts=3, pinned=True)
QUICK = Plan("quick", warmup_s=1, saturation_s=2, fixed_s=2, rounds=2, connections=8,
             scrape_requests=2_000, scrapes=5, cold_starts=1, pinned=False)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- one measured load -------------------------------------------------------------------------------


@dataclass
class Run:
    """One wrk run against one path, with the CPU each process and the machine spent meanwhile."""

    path: str
    load: WrkResult
    cpu_s: dict[str, float]  # server process -> CPU seconds during the run
    wrk_cpu_s: float
    machine_busy: float  # share of the machine's CPU in use
    others_busy: float  # share used by processes neither ours nor wrk
    wait_s: dict[str, float] = field(default_factory=dict)  # server process -> seconds runnable, waiting for a CPU

    def cpu_us_per_request(self) -> dict[str, float]:
        n = max(1, self.load.requests)
        return {name: seconds * 1e6 / n for name, seconds in self.cpu_s.items()}

    def wait_us_per_request(self) -> dict[str, float]:
        n = max(1, self.load.requests)
        return {name: seconds * 1e6 / n for name, seconds in self.wait_s.items()}

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            **self.load.as_dict(),
            "cpu_us_per_request": {k: round(v, 1) for k, v in self.cpu_us_per_request().items()},
            "run_queue_wait_us_per_request": {k: round(v, 1) for k, v in self.wait_us_per_request().items()},
            "wrk_cpu_us_per_request": round(self.wrk_cpu_s * 1e6 / max(1, self.load.requests), 1),
            "machine_busy": round(self.machine_busy, 3),
            "others_busy": round(self.others_busy, 3),
        }


def measured(topology: Topology, path: str, load: Callable[[], WrkResult]) -> Run:
    processes = {name: procstat.tree(pid) for name, pid in topology.server_pids(path).items()}
    before = {name: procstat.cpu_seconds(pids) for name, pids in processes.items()}
    waited = {name: procstat.run_queue_seconds(pids) for name, pids in processes.items()}
    all_before = procstat.cpu_seconds(everything_of(topology))
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before, total_before = procstat.machine_cpu()
    result = load()
    busy_after, total_after = procstat.machine_cpu()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    all_after = procstat.cpu_seconds(everything_of(topology))
    cpu = {name: procstat.cpu_seconds(pids) - before[name] for name, pids in processes.items()}
    wait = {name: procstat.run_queue_seconds(pids) - waited[name] for name, pids in processes.items()}
    wrk_cpu = (children_after.ru_utime + children_after.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    total = max(1e-9, total_after - total_before)
    busy = (busy_after - busy_before) / total
    ours = (all_after - all_before) + wrk_cpu
    return Run(path, result, cpu, wrk_cpu, busy, max(0.0, busy - ours / total), wait)


def everything_of(topology: Topology) -> list[int]:
    return [p for pid in topology.all_server_pids() for p in procstat.tree(pid)]


def rotated(items: tuple[str, ...], round_index: int) -> list[str]:
    """The paths in a different order each round, so that none always runs first or last. Pure."""
    k = round_index % len(items)
    return list(items[k:] + items[:k])


# -- the steps ---------------------------------------------------------------------------------------


def warm_up(topology: Topology, plan: Plan) -> None:
    for path in PATHS + TELEMETRY:
        run_wrk(topology.url(path), plan.warmup_s, plan.connections)


def saturation(topology: Topology, plan: Plan, paths: tuple[str, ...], cpus=None) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {p: [] for p in paths}
    for index in range(plan.rounds):
        for path in rotated(paths, index):
            run = measured(topology, path, lambda: run_wrk(topology.url(path), plan.saturation_s, plan.connections, cpus=cpus))
            runs[path].append(run)
            say(f"  saturation {path:<26} round {index + 1}: {run.load.rps:8.1f} rps  p50 {run.load.p50_ms:.2f} ms")
    return runs


def fixed_rate(topology: Topology, plan: Plan, paths: tuple[str, ...], rate: float) -> tuple[dict[str, list[Run]], list[dict]]:
    """Every path at ``rate``; for the mesh also each Envoy's memory after each round."""
    runs: dict[str, list[Run]] = {p: [] for p in paths}
    envoy_memory = []
    for index in range(plan.rounds):
        for path in rotated(paths, index):
            run = measured(topology, path, lambda: run_wrk(topology.url(path), plan.fixed_s, plan.connections, rate=rate))
            runs[path].append(run)
            say(
                f"  {rate:.0f}/s {path:<26} round {index + 1}: p50 {run.load.p50_ms:.3f} p90 {run.load.p90_ms:.3f} "
                f"p99 {run.load.p99_ms:.3f} ms ({run.load.rps:.0f}/s)"
            )
            if path == "mesh":
                envoy_memory.append({name: asdict(procstat.memory(pid)) for name, pid in topology.envoy_pids().items()})
    return runs, envoy_memory


def calcular_count(url: str) -> int:
    """POST /calcular requests a process has answered, from its own /metrics."""
    text = get(url, "/metrics")[1].decode()
    return int(
        sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "http_server_requests_total" and s.labels.get("route") == "/calcular"
        )
    )


def get(base_url: str, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    host, port = base_url.removeprefix("http://").split("/")[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def scrape(topology: Topology, plan: Plan, connections: int) -> dict:
    """/metrics of the telemetry-on calculator, timed, once it has answered ``scrape_requests``."""
    service = topology.extra["calculator-telemetry-on"]
    url = topology.url("calculator-telemetry-on")
    deadline = time.monotonic() + max(120.0, plan.scrape_requests / 200)
    count = calcular_count(service.url)
    while count < plan.scrape_requests:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count} of {plan.scrape_requests} requests before the deadline")
        rps = max(100.0, topology_rps_hint.get("calculator-telemetry-on", 500.0))
        seconds = min(30.0, max(1.0, (plan.scrape_requests - count) / rps * 1.1))
        run_wrk(url, seconds, connections)
        count = calcular_count(service.url)
    say(f"  scraping after {count} requests")
    timings = {}
    for name, headers in (("text", {}), ("openmetrics", {"Accept": "application/openmetrics-text; version=1.0.0"})):
        samples, size = [], 0
        for _ in range(plan.scrapes):
            started = time.perf_counter()
            status, body = get(service.url, "/metrics", headers)
            samples.append((time.perf_counter() - started) * 1000)
            size = len(body)
            if status != 200:
                raise RuntimeError(f"/metrics answered {status}")
        timings[name] = {"median_ms": statistics.median(samples), "max_ms": max(samples), "bytes": size}
    return {"requests_before": count, **timings}


topology_rps_hint: dict[str, float] = {}


def cold_start(run_dir: Path, timeout: float = 60.0) -> float:
    """Seconds from README's run command (``python -m localmesh up``) to the first 200 through the ingress.

    The command runs as ``make up`` runs it (the virtual environment installed
    already), on a free ingress port, a free Prometheus port and its own run
    directory; it is then stopped with Ctrl-C's SIGINT, as a person would.
    """
    port, prometheus = free_port(), free_port()
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "INGRESS_PORT": str(port),
        "PROMETHEUS_PORT": str(prometheus),
        "LOCALMESH_RUN_DIR": str(run_dir),
    }
    with open(run_dir / "up.log", "ab") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "localmesh", "up"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        elapsed = None
        while time.monotonic() - started < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"`python -m localmesh up` exited {process.returncode}; see {run_dir / 'up.log'}")
            if post_status(port) == 200:
                elapsed = time.monotonic() - started
                break
            time.sleep(0.02)
        if elapsed is None:
            raise RuntimeError(f"no 200 through the ingress within {timeout:.0f} s; see {run_dir / 'up.log'}")
        return elapsed
    finally:
        stop_runner(process, run_dir)


def post_status(port: int) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("POST", "/calcular", body=CALCULATION, headers={"Content-Type": "application/json"})
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def stop_runner(process: subprocess.Popen, run_dir: Path) -> None:
    """Ctrl-C, as a person would; the runner stops what it started. Anything left is ended and reported."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    marker = f"LOCALMESH_RUN_DIR={run_dir}".encode()
    left = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                left.append(int(entry.name))
        except OSError:
            continue
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        raise RuntimeError(f"`python -m localmesh up` left processes behind after SIGINT: {left}")


def envoy_admin_memory(topology: Topology) -> dict:
    """Envoy's own view of its heap (admin /memory), beside the kernel's RSS."""
    out = {}
    for name, envoy in topology.mesh.envoys.items():
        answer = envoy.admin("/memory")
        if answer and answer[0] == 200:
            data = json.loads(answer[1])
            keys = ("allocated", "heap_size", "pageheap_free", "pageheap_unmapped", "total_thread_cache", "total_physical_bytes")
            out[name] = {k: round(int(data[k]) / 2**20, 1) for k in keys if k in data}
    return out


# -- summaries ---------------------------------------------------------------------------------------


def spread(values: list[float]) -> dict:
    """Median, min, max and (max-min)/median of a metric over rounds. Pure."""
    middle = statistics.median(values)
    return {
        "median": round(middle, 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "spread": round((max(values) - min(values)) / middle, 3) if middle else None,
        "n": len(values),
    }


def paired(a: list[Run], b: list[Run], metric: Callable[[Run], float], op: Callable[[float, float], float]) -> dict:
    """A comparison made round by round (each pair ran back to back), then its median. Pure."""
    return spread([op(metric(x), metric(y)) for x, y in zip(a, b)])


def median_cpu(runs: list[Run]) -> dict[str, float]:
    names = runs[0].cpu_s.keys()
    return {name: round(statistics.median(r.cpu_us_per_request()[name] for r in runs), 1) for name in names}


def median_wait(runs: list[Run]) -> dict[str, float]:
    names = runs[0].wait_s.keys()
    return {name: round(statistics.median(r.wait_us_per_request()[name] for r in runs), 1) for name in names}


def summarize(raw: dict) -> dict:
    sat, fixed, compared = raw["saturation"], raw["fixed_rate"], raw["fixed_rate_paths"]
    rps = lambda r: r.load.rps  # noqa: E731
    p50 = lambda r: r.load.p50_ms  # noqa: E731
    p99 = lambda r: r.load.p99_ms  # noqa: E731
    minus = lambda x, y: x - y  # noqa: E731
    ratio = lambda x, y: x / y if y else float("nan")  # noqa: E731
    added_p50 = paired(compared["mesh"], compared["gateway"], p50, minus)
    added_p99 = paired(compared["mesh"], compared["gateway"], p99, minus)
    throughput = paired(sat["mesh"], sat["gateway"], rps, ratio)
    telemetry_rps = paired(sat[TELEMETRY[0]], sat[TELEMETRY[1]], rps, ratio)
    telemetry_p50 = paired(fixed[TELEMETRY[0]], fixed[TELEMETRY[1]], p50, ratio)
    memory = {}
    for snapshot in raw["envoy_memory"]:  # the largest each Envoy reached
        for name, m in snapshot.items():
            if name not in memory or m["rss_mb"] > memory[name]["rss_mb"]:
                memory[name] = m
    envoy_cpu = {}
    for name in memory:
        cores_per_krps = [
            (r.cpu_s[name] / r.load.seconds) / (r.load.rps / 1000) for r in compared["mesh"] if r.load.rps
        ]
        envoy_cpu[name] = round(statistics.median(cores_per_krps), 3)
    # Added latencies: an interval over paired rounds, never a point figure alone.
    added_interval = lambda metric: hops.median_interval(  # noqa: E731
        [metric(m) - metric(g) for m, g in zip(compared["mesh"], compared["gateway"])]
    )
    summary = {
        "mesh_added_p50_ms": added_interval(p50),
        "mesh_added_p99_ms": added_interval(p99),
        "mesh_throughput_ratio": round(throughput["median"], 3),
        "telemetry_rps_ratio": round(telemetry_rps["median"], 3),
        "telemetry_p50_ratio": round(telemetry_p50["median"], 3),
        "envoy_rss_mb": round(max(m["rss_mb"] for m in memory.values()), 1),
        "scrape_ms": round(raw["scrape"]["text"]["median_ms"], 2),
        "cold_start_s": round(statistics.median(raw["cold_start_s"]), 2) if raw["cold_start_s"] else None,
    }

    def latencies(runs: list[Run]) -> dict:
        return {
            "p50_ms": spread([p50(r) for r in runs]),
            "p90_ms": spread([r.load.p90_ms for r in runs]),
            "p99_ms": spread([p99(r) for r in runs]),
            "achieved_rate": spread([rps(r) for r in runs]),
        }

    details = {
        "fixed_rate_rps": raw["rate"],
        "paths_rate_rps": raw["paths_rate"],
        "paths": {
            path: {
                "saturation_rps": spread([rps(r) for r in sat[path]]),
                **latencies(compared.get(path) or fixed[path]),
                "at_half_direct_saturation": latencies(fixed[path]),
                "cpu_us_per_request_at_saturation": median_cpu(sat[path]),
                "cpu_us_per_request_at_fixed_rate": median_cpu(compared.get(path) or fixed[path]),
                "run_queue_wait_us_per_request_at_fixed_rate": median_wait(compared.get(path) or fixed[path]),
            }
            for path in PATHS + TELEMETRY
        },
        "mesh_added_p50_ms": added_p50,
        "mesh_added_p99_ms": added_p99,
        "mesh_added_p90_ms": paired(compared["mesh"], compared["gateway"], lambda r: r.load.p90_ms, minus),
        "mesh_added_at_half_direct_saturation_ms": {
            "p50": paired(fixed["mesh"], fixed["gateway"], p50, minus),
            "p99": paired(fixed["mesh"], fixed["gateway"], p99, minus),
        },
        "mesh_throughput_ratio": throughput,
        "telemetry_rps_ratio": telemetry_rps,
        "telemetry_p50_ratio": telemetry_p50,
        "envoy_memory_mb": memory,
        "envoy_admin_memory_mb": raw["envoy_admin_memory"],
        "envoy_cores_per_1000_rps": envoy_cpu,
        "scrape": raw["scrape"],
        "cold_start_s": raw["cold_start_s"],
        "noise": {
            "others_busy": spread(
                [r.others_busy for group in (sat, fixed, compared) for runs in group.values() for r in runs]
            ),
            "load_average_start": raw["load_average"][0],
            "load_average_end": raw["load_average"][1],
        },
    }
    if raw.get("hops"):
        hop_summary, details["hops"] = hops.summarize(raw["hops"])
        summary.update(hop_summary)
    if raw.get("pinned"):
        pinned = raw["pinned"]
        details["pinned"] = {
            "saturation_rps": {path: spread([rps(r) for r in pinned[path]]) for path in pinned},
            "mesh_throughput_ratio": paired(pinned["mesh"], pinned["gateway"], rps, ratio),
            "cpu_us_per_request": {path: median_cpu(pinned[path]) for path in pinned},
        }
        summary["mesh_throughput_ratio_pinned"] = round(details["pinned"]["mesh_throughput_ratio"]["median"], 3)
    return {"summary": summary, "details": details}


# -- the whole run -----------------------------------------------------------------------------------


def machine() -> dict:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    envoy = subprocess.run([str(Path(sys.executable).parent / "envoy"), "--version"], capture_output=True, text=True)
    wrk = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "wrk"], capture_output=True, text=True)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "envoy": (re.search(r"version: \S+?/(\d+\.\d+\.\d+)", envoy.stdout) or [None, "?"])[1],
        "wrk": wrk.stdout.strip() or "?",
    }


def measure(plan: Plan, work_dir: Path, cold_start_runs: int | None = None) -> dict:
    raw: dict = {"plan": asdict(plan), "load_average": [procstat.load_average(), None]}
    say(f"bench ({plan.name}): starting the three paths in {work_dir}")
    with Topology(work_dir / "topology") as topology:
        say("warming up")
        warm_up(topology, plan)
        say("saturation (wrk, keep-alive)")
        raw["saturation"] = saturation(topology, plan, PATHS + TELEMETRY)
        for name, runs in raw["saturation"].items():
            topology_rps_hint[name] = statistics.median(r.load.rps for r in runs)
        rate = round(statistics.median(r.load.rps for r in raw["saturation"]["direct"]) / 2, 1)
        raw["rate"] = rate
        say(f"fixed rate: {rate}/s (half of the direct path's saturation)")
        raw["fixed_rate"], raw["envoy_memory"] = fixed_rate(topology, plan, PATHS + TELEMETRY, rate)
        # Where the gateway costs more than the calculator, half the direct path's saturation
        # is more than the other paths can serve: their latency is then queueing, not hops.
        # The paths are then also compared at half the slowest one's saturation.
        slowest = min(statistics.median(r.load.rps for r in raw["saturation"][p]) for p in ("gateway", "mesh"))
        if rate > slowest / 2 * 1.05:
            raw["paths_rate"] = round(slowest / 2, 1)
            say(f"comparison rate: {raw['paths_rate']}/s (half of the slowest path's saturation)")
            raw["fixed_rate_paths"], memory = fixed_rate(topology, plan, PATHS, raw["paths_rate"])
            raw["envoy_memory"] += memory
        else:
            raw["paths_rate"] = rate
            raw["fixed_rate_paths"] = {p: raw["fixed_rate"][p] for p in PATHS}
        raw["envoy_admin_memory"] = envoy_admin_memory(topology)
        if plan.pinned:
            say("saturation, pinned: wrk on CPU 0, every server process on CPU 1")
            procstat.set_affinity(everything_of(topology), {1})
            try:
                raw["pinned"] = saturation(topology, plan, PATHS, cpus={0})
            finally:
                procstat.set_affinity(everything_of(topology), set(range(os.cpu_count())))
        say("one hop in front of the calculator: the sidecar, a bare Envoy, HAProxy")
        raw["hops"] = hops.measure_hops(
            topology, work_dir / "hops", statistics.median(r.load.rps for r in raw["saturation"]["direct"]),
            plan.fixed_s, plan.rounds, plan.connections, say,
        )
        say(f"/metrics after {plan.scrape_requests} requests")
        raw["scrape"] = scrape(topology, plan, plan.connections)
    raw["cold_start_s"] = []
    for index in range(plan.cold_starts if cold_start_runs is None else cold_start_runs):
        seconds = cold_start(work_dir / f"cold-start-{index}")
        say(f"  run command to first 200: {seconds:.2f} s")
        raw["cold_start_s"].append(seconds)
    raw["load_average"][1] = procstat.load_average()
    return raw


def serializable(raw: dict) -> dict:
    out = {}
    for key, value in raw.items():
        if key in ("saturation", "fixed_rate", "fixed_rate_paths", "pinned"):
            out[key] = {path: [r.as_dict() for r in runs] for path, runs in value.items()}
        elif key == "hops":
            out[key] = hops.serializable(value)
        else:
            out[key] = value
    return out


def run(plan: Plan, out_dir: Path, report: Path, command: str) -> dict:
    """Measure, then write results.json and latency.png to ``out_dir`` and the generated part of ``report``."""
    from bench import report as reporting

    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory(prefix="meshcalc-bench-") as scratch:
        raw = measure(plan, Path(scratch))
    results = {
        "command": command,
        "date": started.isoformat(timespec="seconds"),
        "duration_s": round((datetime.now(timezone.utc) - started).total_seconds()),
        "machine": machine(),
        **summarize(raw),
        "raw": serializable(raw),
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    plot = reporting.plot(results, out_dir / "latency.png")
    reporting.write(results, report, plot)
    say(f"wrote {out_dir / 'results.json'}, {report}" + (f", {plot}" if plot else ""))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small numbers, for CI smoke")
    parser.add_argument("--out-dir", type=Path, help="where results.json and latency.png go")
    parser.add_argument("--report", type=Path, help="the Markdown file whose generated part is rewritten")
    parser.add_argument("--rounds", type=int, help="override the plan's rounds")
    parser.add_argument("--seconds", type=float, help="override every load's duration")
    parser.add_argument("--scrape-requests", type=int, help="override the requests before the scrape")
    parser.add_argument("--cold-starts", type=int, help="override how many times `localmesh up` is timed")
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else FULL
    overrides = {}
    if args.rounds:
        overrides["rounds"] = args.rounds
    if args.seconds:
        overrides.update(warmup_s=min(plan.warmup_s, args.seconds), saturation_s=args.seconds, fixed_s=args.seconds)
    if args.scrape_requests is not None:
        overrides["scrape_requests"] = args.scrape_requests
    if args.cold_starts is not None:
        overrides["cold_starts"] = args.cold_starts
    if overrides:
        plan = Plan(**{**asdict(plan), **overrides})
    out_dir = args.out_dir or (ROOT / ".run" / "bench-quick" if args.quick else ROOT / "bench")
    report = args.report or (out_dir / "BENCHMARKS.md" if args.quick else ROOT / "BENCHMARKS.md")

    command = "python -m bench" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    results = run(plan, out_dir, report, command)
    say(json.dumps(results["summary"], indent=1))
    return 0
