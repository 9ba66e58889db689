"""``python -m bench.access_log_cost``: the sidecar's access log, variant by variant, against a bare Envoy.

The hop of ``bench/hops.py`` (the sidecar as translated, and a bare Envoy, in
front of one calculator), plus the same sidecar with its access log changed,
each variant an Envoy of its own, all driven in turns at the two rates of
``bench/hops.py``, each round in a rotated order:

- ``lean``: the JSON format cut to ``LEAN_FIELDS``, what the scenarios, tests
  and operators read;
- ``flush-1s``: the format as shipped, the file flushed every second or every
  256 kB (Envoy's command line; the file access logger itself has no buffer
  setting);
- ``no-log``: no access log at all, the floor of this lever (not shippable:
  the scenarios read the log).

Each Envoy's CPU per request is its threads' run time (schedstat, to the
nanosecond); each variant's ratio over the bare Envoy is taken within a round,
then the median over rounds with ``hops.median_interval``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
from pathlib import Path

from bench import hops, procstat
from bench.loadgen import run_wrk
from bench.topology import Topology
from localmesh.envoy import EnvoyProcess
from localmesh.processes import free_port, wait_until

# What something reads (localmesh.observe, scenarios/, tests/, bench/retry_policy.py)
# or an operator needs to follow one request: when, what, the answer, Envoy's
# flags, where it went, how long, and the ids that join it to traces and app logs.
LEAN_FIELDS = (
    "start_time",
    "method",
    "path",
    "protocol",
    "response_code",
    "response_flags",
    "response_code_details",
    "upstream_cluster",
    "upstream_host",
    "upstream_attempts",
    "duration",
    "request_id",
    "traceparent",
)
FLUSH_FLAGS = {"--file-flush-interval-msec": "1000", "--file-flush-min-size-kb": "256"}
VARIANTS = ("lean", "flush-1s", "no-log")


# -- configurations (pure) ---------------------------------------------------------------------------


def _access_logs(bootstrap: dict):
    for listener in bootstrap["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                yield network_filter["typed_config"]


def with_log_fields(bootstrap: dict, fields: tuple[str, ...]) -> dict:
    """The bootstrap with its JSON access log cut to ``fields`` (and the proxy's name). Pure."""
    changed = copy.deepcopy(bootstrap)
    for manager in _access_logs(changed):
        for log in manager.get("access_log", []):
            json_format = log["typed_config"]["log_format"]["json_format"]
            missing = set(fields) - set(json_format)
            if missing:
                raise ValueError(f"the access log has no field {sorted(missing)}")
            log["typed_config"]["log_format"]["json_format"] = {
                key: value for key, value in json_format.items() if key == "proxy" or key in fields
            }
    return changed


def without_access_log(bootstrap: dict) -> dict:
    changed = copy.deepcopy(bootstrap)
    for manager in _access_logs(changed):
        manager.pop("access_log", None)
    return changed


def with_flags(command: list[str], flags: dict[str, str]) -> list[str]:
    """An Envoy command line with these flags' values replaced, or added. Pure."""
    command = list(command)
    for flag, value in flags.items():
        if flag in command:
            command[command.index(flag) + 1] = value
        else:
            command += [flag, value]
    return command


def without_filters(bootstrap: dict) -> dict:
    """The router alone: istiod's fault and CORS filters removed (the sidecar's other cost). Pure."""
    changed = copy.deepcopy(bootstrap)
    for manager in _access_logs(changed):
        manager["http_filters"] = [f for f in manager["http_filters"] if f["name"] == "envoy.filters.http.router"]
    return changed


def without_retries(bootstrap: dict) -> dict:
    """No retry policy, no attempt-count header on any route (the sidecar's other cost). Pure."""
    changed = copy.deepcopy(bootstrap)
    for manager in _access_logs(changed):
        for host in manager["route_config"]["virtual_hosts"]:
            host.pop("include_request_attempt_count", None)
            for route in host["routes"]:
                route.get("route", {}).pop("retry_policy", None)
    return changed


# Not shippable, only to say where the rest of the sidecar's cost is; combined with "+".
ABLATIONS = {"no-log": without_access_log, "no-filters": without_filters, "no-retries": without_retries}


def variant_bootstrap(name: str, sidecar: dict) -> dict:
    """``lean``, ``flush-1s`` (the sidecar as it is), or ablations joined by "+" ("no-log+no-filters"). Pure."""
    if name == "lean":
        return with_log_fields(sidecar, LEAN_FIELDS)
    if name == "flush-1s":
        return sidecar
    if all(part in ABLATIONS for part in name.split("+")):
        for part in name.split("+"):
            sidecar = ABLATIONS[part](sidecar)
        return sidecar
    raise ValueError(f"unknown variant {name!r}: one of {', '.join(VARIANTS)}, or of {', '.join(ABLATIONS)} joined by +")


class FlaggedEnvoy(EnvoyProcess):
    """An Envoy on the usual command line but for some flags."""

    def __init__(self, name: str, work_dir: Path, admin_port: int, flags: dict[str, str]):
        super().__init__(name, work_dir, admin_port)
        self.flags = flags

    def _launch(self, command: list[str], env: dict[str, str] | None = None) -> None:
        super()._launch(with_flags(command, self.flags), env)


# -- the run -----------------------------------------------------------------------------------------


def start_envoys(work_dir: Path, calculator_port: int, sidecar: dict, variants: tuple[str, ...]) -> hops.Hops:
    """The bare Envoy, the sidecar as translated, and one sidecar per variant, answering."""
    started = hops.Hops(work_dir, calculator_port, sidecar)
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        for name in ("bare-envoy", "sidecar", *variants):
            port, admin = free_port(), free_port()
            if name == "bare-envoy":
                bootstrap = hops.bare_bootstrap(port, admin, calculator_port)
            else:
                base = sidecar if name == "sidecar" else variant_bootstrap(name, sidecar)
                bootstrap = hops.relocated(base, port, admin, work_dir / f"{name}-access.log")
            flags = FLUSH_FLAGS if name == "flush-1s" else {}
            envoy = FlaggedEnvoy(f"hop-{name}", work_dir, admin, flags)
            started.processes[name], started.ports[name] = envoy, port
            envoy.start(bootstrap)
            envoy.wait_ready()
        for name in started.ports:
            wait_until(lambda: hops.answers(started.url(name)), 20, what=f"{name} answering")
    except BaseException:
        started.stop()
        raise
    return started


def summarize(runs: dict[str, list[hops.HopRun]]) -> dict:
    """Per Envoy: median CPU µs per request, and its ratio over the bare Envoy's, paired by round. Pure."""
    cpu = lambda path: [r.proxy_cpu_us_per_request() for r in runs[path]]  # noqa: E731
    return {
        path: {
            "cpu_us_per_request": round(statistics.median(cpu(path)), 1),
            "rps": round(statistics.median(r.load.rps for r in runs[path]), 1),
            "over_bare": hops.median_interval([v / b for v, b in zip(cpu(path), cpu("bare-envoy"))]),
        }
        for path in runs
        if path != "bare-envoy"
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.access_log_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--near-saturation", type=float,
                        help="this rate instead of 0.8 of the calculator's (a busy machine may not serve that)")
    parser.add_argument("--output", type=Path, help="write the runs and the summary here as JSON")
    args = parser.parse_args(argv)
    variants = tuple(v for v in args.variants.split(",") if v)
    for name in variants:
        if name not in VARIANTS and not all(part in ABLATIONS for part in name.split("+")):
            parser.error(f"unknown variant {name!r}")
    results: dict = {"variants": variants, "lean_fields": LEAN_FIELDS, "flush_flags": FLUSH_FLAGS, "by_rate": {}}
    with tempfile.TemporaryDirectory(prefix="meshcalc-access-log-") as scratch, Topology(Path(scratch)) as topology:
        calculator_url = f"{topology.calculator.url}/calcular"
        saturation = [run_wrk(calculator_url, 3, args.connections).rps for _ in range(3)]
        results["rates"] = hops.rates_for(statistics.median(saturation))
        if args.near_saturation:
            results["rates"]["near_saturation"] = args.near_saturation
        print(f"calculator direct: {statistics.median(saturation):.0f}/s at saturation; rates {results['rates']}")
        sidecar = topology.mesh.translation.bootstraps[hops.SIDECAR]
        calculator_port = int(topology.calculator.url.rsplit(":", 1)[1])
        # Not ``with``: Hops.__enter__ would start its own sidecar and bare Envoy over these.
        envoys = start_envoys(Path(scratch) / "envoys", calculator_port, sidecar, variants)
        try:
            paths = ("bare-envoy", "sidecar", *variants)
            for name, rate in results["rates"].items():
                for path in paths:  # warm-up
                    run_wrk(envoys.url(path), 1, args.connections, rate=rate, headers={"Host": hops.HOST})
                runs = hops.measure_rate(envoys, rate, args.seconds, args.rounds, args.connections,
                                         paths=paths, cpu_seconds=procstat.exec_seconds)
                results["by_rate"][name] = {"summary": summarize(runs),
                                            "runs": {p: [r.as_dict() for r in rr] for p, rr in runs.items()}}
        finally:
            envoys.stop()
    for name, rate in results["rates"].items():
        print(f"at {rate:.0f}/s ({name}), CPU µs per request, and over the bare Envoy (median over {args.rounds} rounds):")
        for path, figures in results["by_rate"][name]["summary"].items():
            ratio = hops.describe_interval(figures["over_bare"], "", "{:.3f}")
            print(f"  {path:<10} {figures['cpu_us_per_request']:6.0f} µs ({figures['rps']:.0f}/s)  {ratio}")
    if args.output:
        args.output.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
