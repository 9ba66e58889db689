"""``python -m bench.envoy_cost``: an Envoy's CPU per request, user and system, with and without its access log.

Starts the mesh path of ``bench.topology``, then in rounds drives it at
saturation with the Envoys as translated and with their access logs removed
(applied to the running Envoys through their watched files, as a scenario
switch is). Prints µs of CPU per request for each Envoy (user and system, from
/proc/<pid>/stat) and each app. Medians over rounds.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from pathlib import Path

from bench import procstat
from bench.loadgen import run_wrk
from bench.topology import Topology
from localmesh.processes import wait_until

DRAINING = "listener_manager.total_listeners_draining"


def draining(envoy) -> int:
    return envoy.stats(DRAINING).get(DRAINING, 0)


def user_system_seconds(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) / procstat.CLOCK_TICKS, int(fields[12]) / procstat.CLOCK_TICKS


def without_access_log(bootstrap: dict) -> dict:
    changed = copy.deepcopy(bootstrap)
    for listener in changed["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                network_filter["typed_config"].pop("access_log", None)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.envoy_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="meshcalc-envoy-cost-") as scratch, Topology(Path(scratch)) as topology:
        envoys, apps = topology.envoy_pids(), topology.app_pids("mesh")
        translated = dict(topology.mesh.translation.bootstraps)
        variants = {
            "as translated": translated,
            "no access log": {name: without_access_log(b) for name, b in translated.items()},
        }
        run_wrk(topology.url("mesh"), 3, 16)  # warm-up
        rows: dict[str, list[dict]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, bootstraps in variants.items():
                for envoy_name, envoy in topology.mesh.envoys.items():
                    envoy.reconfigure(bootstraps[envoy_name])
                # The old listeners (with or without the log) drained before measuring.
                wait_until(lambda: not any(draining(e) for e in topology.mesh.envoys.values()), 10, what="drained")
                before = {n: user_system_seconds(p) for n, p in envoys.items()}
                apps_before = {n: procstat.cpu_seconds(procstat.tree(p)) for n, p in apps.items()}
                load = run_wrk(topology.url("mesh"), args.seconds, 16)
                after = {n: user_system_seconds(p) for n, p in envoys.items()}
                apps_after = {n: procstat.cpu_seconds(procstat.tree(p)) for n, p in apps.items()}
                per = lambda seconds: seconds * 1e6 / max(1, load.requests)  # noqa: E731
                row = {"rps": load.rps}
                for n in envoys:
                    row[f"{n} user"] = per(after[n][0] - before[n][0])
                    row[f"{n} system"] = per(after[n][1] - before[n][1])
                for n in apps:
                    row[n] = per(apps_after[n] - apps_before[n])
                rows[name].append(row)
    print(f"µs of CPU per request at saturation, median of {args.rounds} rounds:")
    for name, measured in rows.items():
        medians = {k: statistics.median(r[k] for r in measured) for k in measured[0]}
        print(f"  {name:<14} " + ", ".join(f"{k} {v:.0f}" for k, v in medians.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
