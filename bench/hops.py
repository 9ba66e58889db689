"""One proxy hop in front of the calculator, and what it costs against the proxy's own floor.

Four ways to reach one and the same calculator process, driven in turns at the
same rate, each round in a rotated order:

- ``direct``: the calculator itself;
- ``sidecar``: the project's sidecar Envoy, its bootstrap as ``localmesh``
  translates it from ``istio/`` (routes, retries, circuit breakers, the JSON
  access log), moved to ports of its own;
- ``bare-envoy``: the same Envoy binary with the same command line, configured
  with the least that proxies HTTP: one listener, the router filter alone, one
  static cluster, no access log;
- ``haproxy``: Debian's HAProxy doing the same hop, one thread, no log.

What is compared, round by round (the loads ran back to back): each proxy's CPU
per request (user + system, from /proc), and each path's latency minus the
direct path's. A ratio or a difference is taken within a round, then the
median over rounds, with a distribution-free interval (``median_interval``):
the machine's speed drifts by a third between windows of seconds, so only
paired figures mean anything.
"""

from __future__ import annotations

import copy
import http.client
import math
import shutil
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench import procstat
from bench.loadgen import WrkResult, run_wrk
from localmesh.envoy import EnvoyProcess
from localmesh.processes import ManagedProcess, free_port, wait_until

HOST = "calculator"  # the name the sidecar's routes match, as the gateway's calls carry it
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
HAPROXY_HINT = "apt-get install haproxy"
PROXIES = ("sidecar", "bare-envoy", "haproxy")
CALCULATION = b'{"operacion": "sumar", "numero1": 2, "numero2": 3}'


# -- configurations (pure) ---------------------------------------------------------------------------


def relocated(bootstrap: dict, listen_port: int, admin_port: int, access_log: Path) -> dict:
    """A translated bootstrap on other ports, its access log in another file. Pure."""
    moved = copy.deepcopy(bootstrap)
    moved["admin"]["address"]["socket_address"]["port_value"] = admin_port
    (listener,) = moved["static_resources"]["listeners"]
    listener["address"]["socket_address"]["port_value"] = listen_port
    for chain in listener["filter_chains"]:
        for network_filter in chain["filters"]:
            for log in network_filter["typed_config"].get("access_log", []):
                log["typed_config"]["path"] = str(access_log)
    return moved


def bare_bootstrap(listen_port: int, admin_port: int, upstream_port: int) -> dict:
    """The least Envoy configuration that proxies HTTP to one upstream. Pure."""
    address = lambda port: {"socket_address": {"address": "127.0.0.1", "port_value": port}}  # noqa: E731
    return {
        "node": {"id": "bare-envoy", "cluster": "bare-envoy"},  # file-based xDS (localmesh.envoy) needs one
        "admin": {"address": address(admin_port)},
        "static_resources": {
            "listeners": [
                {
                    "name": "bare",
                    "address": address(listen_port),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": HCM,
                                        "stat_prefix": "bare",
                                        "route_config": {
                                            "name": "bare",
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}],
                                                }
                                            ],
                                        },
                                        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "upstream",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": "upstream",
                        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address(upstream_port)}}]}],
                    },
                }
            ],
        },
    }


def haproxy_config(listen_port: int, upstream_port: int) -> str:
    """HAProxy doing the same hop: HTTP mode, keep-alive both sides, one thread, no log. Pure."""
    return f"""global
    nbthread 1
    maxconn 512

defaults
    mode http
    option http-keep-alive
    timeout connect 1s
    timeout client 30s
    timeout server 30s

frontend hop
    bind 127.0.0.1:{listen_port}
    default_backend calculator

backend calculator
    http-reuse always
    server calculator 127.0.0.1:{upstream_port}
"""


# -- intervals (pure) --------------------------------------------------------------------------------


def median_interval(values: list[float], confidence: float = 0.9) -> dict:
    """The median and a distribution-free interval for it (order statistics), over paired rounds. Pure.

    The interval is the narrowest pair of order statistics (x_k, x_{n+1-k})
    whose binomial coverage is at least ``confidence``; with too few rounds
    for that, the full range and the coverage it has. ``resolved`` is false
    when the interval holds zero (the difference is not told apart from
    none), or when it covers less than ``confidence`` (too few rounds).
    """
    ordered = sorted(values)
    n = len(ordered)
    coverage = lambda k: 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n  # noqa: E731
    k = 1
    while k + 1 <= (n + 1) // 2 and coverage(k + 1) >= confidence:
        k += 1
    low, high = ordered[k - 1], ordered[n - k]
    return {
        "median": round(statistics.median(ordered), 4),
        "low": round(low, 4),
        "high": round(high, 4),
        "confidence": round(coverage(k), 3),
        # Too few rounds for the confidence asked resolve nothing either.
        "resolved": not (low <= 0 <= high) and coverage(k) >= confidence,
        "n": n,
    }


def describe_interval(stats: dict, unit: str = "ms", pattern: str = "{:.3f}") -> str:
    """``0.412 ms (0.301 – 0.530, 94%)``, or ``not resolved (-0.1 – 0.3 ms, 94%)``. Pure."""
    span = f"{pattern.format(stats['low'])} – {pattern.format(stats['high'])}"
    share = f"{stats['confidence']:.0%}"
    unit = f" {unit}" if unit else ""
    if not stats["resolved"]:
        return f"not resolved ({span}{unit}, {share})"
    return f"{pattern.format(stats['median'])}{unit} ({span}, {share})"


# -- the processes -----------------------------------------------------------------------------------


class HaproxyProcess(ManagedProcess):
    def __init__(self, work_dir: Path, listen_port: int, upstream_port: int):
        super().__init__("haproxy", work_dir / "haproxy.log")
        self.port = listen_port
        self.config_path = work_dir / "haproxy.cfg"
        self.config_path.write_text(haproxy_config(listen_port, upstream_port))

    def start(self) -> None:
        binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
        if binary is None:
            raise RuntimeError(f"haproxy is not installed: {HAPROXY_HINT}")
        checked = subprocess.run([binary, "-c", "-f", str(self.config_path)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"haproxy refused {self.config_path}: {checked.stdout}{checked.stderr}")
        self._launch([binary, "-db", "-f", str(self.config_path)])


def answers(url: str) -> bool:
    """Whether a POST /calcular through ``url`` gets a 200."""
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=2)
    try:
        connection.request("POST", "/calcular", body=CALCULATION, headers={"Host": HOST, "Content-Type": "application/json"})
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def haproxy_installed() -> bool:
    return bool(shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin"))


@dataclass
class Hops:
    """The proxies in front of one calculator, started and stopped together."""

    work_dir: Path
    calculator_port: int
    sidecar_bootstrap: dict
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def start(self) -> "Hops":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            for name in ("sidecar", "bare-envoy"):
                port, admin = free_port(), free_port()
                if name == "sidecar":
                    bootstrap = relocated(self.sidecar_bootstrap, port, admin, self.work_dir / "sidecar-access.log")
                else:
                    bootstrap = bare_bootstrap(port, admin, self.calculator_port)
                envoy = EnvoyProcess(f"hop-{name}", self.work_dir, admin)
                self.processes[name], self.ports[name] = envoy, port
                envoy.start(bootstrap)
                envoy.wait_ready()
            if haproxy_installed():
                port = free_port()
                haproxy = HaproxyProcess(self.work_dir, port, self.calculator_port)
                self.processes["haproxy"], self.ports["haproxy"] = haproxy, port
                haproxy.start()
            for name in self.ports:
                wait_until(lambda: answers(self.url(name)), 20, what=f"{name} answering")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop(timeout=10)

    def __enter__(self) -> "Hops":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def url(self, path: str) -> str:
        port = self.calculator_port if path == "direct" else self.ports[path]
        return f"http://127.0.0.1:{port}/calcular"

    def paths(self) -> tuple[str, ...]:
        return ("direct",) + tuple(p for p in PROXIES if p in self.ports)


@dataclass
class HopRun:
    path: str
    load: WrkResult
    proxy_cpu_s: float | None

    def proxy_cpu_us_per_request(self) -> float | None:
        if self.proxy_cpu_s is None:
            return None
        return self.proxy_cpu_s * 1e6 / max(1, self.load.requests)

    def as_dict(self) -> dict:
        cpu = self.proxy_cpu_us_per_request()
        return {"path": self.path, **self.load.as_dict(), "proxy_cpu_us_per_request": None if cpu is None else round(cpu, 1)}


def measure_rate(hops: Hops, rate: float, seconds: float, rounds: int, connections: int, say=print,
                 paths: tuple[str, ...] | None = None, cpu_seconds=procstat.cpu_seconds) -> dict[str, list[HopRun]]:
    """Every path (or those of ``paths``) at ``rate`` for ``seconds``, ``rounds`` times, the order rotating each round."""
    paths = hops.paths() if paths is None else paths
    runs: dict[str, list[HopRun]] = {p: [] for p in paths}
    for index in range(rounds):
        k = index % len(paths)
        for path in paths[k:] + paths[:k]:
            process = hops.processes.get(path)
            pids = procstat.tree(process.pid) if process is not None else None
            before = cpu_seconds(pids) if pids else None
            load = run_wrk(hops.url(path), seconds, connections, rate=rate, headers={"Host": HOST})
            cpu = cpu_seconds(pids) - before if pids else None
            run = HopRun(path, load, cpu)
            runs[path].append(run)
            cpu_text = "" if cpu is None else f", proxy {run.proxy_cpu_us_per_request():.0f} µs/request"
            say(f"  hop {rate:.0f}/s {path:<10} round {index + 1}: p50 {load.p50_ms:.3f} ms ({load.rps:.0f}/s){cpu_text}")
    return runs


def summarize_rate(runs: dict[str, list[HopRun]]) -> dict:
    """Per rate: the ratios of proxy CPU and the added latencies, each paired within rounds. Pure."""
    cpu = lambda path: [r.proxy_cpu_us_per_request() for r in runs[path]]  # noqa: E731
    out: dict = {
        "proxy_cpu_us_per_request": {p: round(statistics.median(cpu(p)), 1) for p in PROXIES if p in runs},
        "achieved_rate": {p: round(statistics.median(r.load.rps for r in runs[p]), 1) for p in runs},
        "added_p50_ms": {},
        "added_p99_ms": {},
    }
    for proxy in (p for p in PROXIES if p in runs):
        for key, metric in (("added_p50_ms", lambda r: r.load.p50_ms), ("added_p99_ms", lambda r: r.load.p99_ms)):
            out[key][proxy] = median_interval([metric(a) - metric(d) for a, d in zip(runs[proxy], runs["direct"])])
    out["envoy_hop_limit_ratio"] = median_interval([s / b for s, b in zip(cpu("sidecar"), cpu("bare-envoy"))])
    if "haproxy" in runs:
        out["haproxy_hop_ratio"] = median_interval([b / h for b, h in zip(cpu("bare-envoy"), cpu("haproxy"))])
    return out


# -- the step of the benchmark ----------------------------------------------------------------------

SIDECAR = "gateway-0-sidecar"
LOW_RATE = 250.0  # where a wake-up per request, not the work, sets an Envoy's CPU per request
NEAR_SATURATION = 0.8  # of the direct path's saturation


def rates_for(direct_saturation_rps: float) -> dict[str, float]:
    """The two rates the hops are compared at: near saturation, and low. Pure."""
    high = round(direct_saturation_rps * NEAR_SATURATION, 1)
    return {"near_saturation": high, "low": min(LOW_RATE, round(high / 2, 1))}


def measure_hops(topology, work_dir: Path, direct_saturation_rps: float, seconds: float, rounds: int,
                 connections: int, say=print) -> dict:
    """Both rates, every path; raw runs and their summaries."""
    calculator_port = int(topology.calculator.url.rsplit(":", 1)[1])
    bootstrap = topology.mesh.translation.bootstraps[SIDECAR]
    raw: dict = {"rates": rates_for(direct_saturation_rps), "haproxy": haproxy_installed(), "runs": {}}
    if not raw["haproxy"]:
        say(f"  haproxy is not installed ({HAPROXY_HINT}): the HAProxy hop is left out")
    with Hops(work_dir, calculator_port, bootstrap) as hops:
        for name, rate in raw["rates"].items():
            run_wrk(hops.url("sidecar"), 1, connections, rate=rate, headers={"Host": HOST})  # warm-up
            raw["runs"][name] = measure_rate(hops, rate, seconds, rounds, connections, say)
    return raw


def summarize(raw: dict) -> tuple[dict, dict]:
    """(summary keys, details) of the hop step. Pure."""
    details = {
        "rates_rps": raw["rates"],
        "by_rate": {name: summarize_rate(runs) for name, runs in raw["runs"].items()},
    }
    by_rate = details["by_rate"]
    limit = {name: by_rate[name]["envoy_hop_limit_ratio"]["median"] for name in by_rate}
    summary = {
        # The goal holds at both rates when it holds at the worse.
        "envoy_hop_limit_ratio": round(max(limit.values()), 3),
        "envoy_hop_limit_ratio_near_saturation": round(limit["near_saturation"], 3),
        "envoy_hop_limit_ratio_low_rate": round(limit["low"], 3),
        "haproxy_hop_ratio": (
            round(by_rate["near_saturation"]["haproxy_hop_ratio"]["median"], 3) if raw["haproxy"] else None
        ),
        "haproxy_hop_ratio_low_rate": round(by_rate["low"]["haproxy_hop_ratio"]["median"], 3) if raw["haproxy"] else None,
        "sidecar_hop_added_p50_ms": by_rate["near_saturation"]["added_p50_ms"]["sidecar"],
        "sidecar_hop_added_p50_ms_low_rate": by_rate["low"]["added_p50_ms"]["sidecar"],
    }
    return summary, details


def serializable(raw: dict) -> dict:
    return {**raw, "runs": {name: {p: [r.as_dict() for r in runs] for p, runs in rr.items()} for name, rr in raw["runs"].items()}}
