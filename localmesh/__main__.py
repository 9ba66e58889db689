"""``python -m localmesh``: the local mesh's command line.

    up [--scenario NAME]                                 start it, until Ctrl-C
    scenario NAME [--kind]                               apply a scenario (policy and faults) to the running mesh
    scenarios                                            the scenarios, one line each (base restores everything)
    status [--json]                                      what runs where
    restart                                              a rolling restart of every replica, as Kubernetes does it
    fault POD [--errors X] [--status N] [--delay 2s] [--delay-share X] [--hang]
                                                         one calculator replica's fault, at run time
    fault-clear [POD]                                    no fault on one replica, or on all
    load [--rate 10] [--duration 60s] [--canary]         steady load through the ingress, a live line a second
    demo NAME [--json] [--kind]                          a scenario on a fresh mesh, loaded and judged
    top [--once] [--seconds N]                           per workload and version, a frame a second (Ctrl-C ends it)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from calculator import admin_client as faults
from localmesh.mesh import Mesh, MeshNotRunning, MeshOptions, claim_run_dir, running_state
from localmesh.processes import http_status
from localmesh.prometheus import alertmanager_binary, prometheus_binary
from localmesh.translate import TranslationError
from servicekit.settings import SettingsError, env_int

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = Path(os.environ.get("LOCALMESH_RUN_DIR", ROOT / ".run"))
# Five replicas replaced one at a time, each waited for: minutes on a slow machine, never ten.
RESTART_DEADLINE_SECONDS = 600
SEED_CURL = (
    "curl -s -X POST {url}/calcular -H 'Content-Type: application/json' "
    "-d '{{\"operacion\": \"dividir\", \"numero1\": 7, \"numero2\": 2}}'"
)


def _scenario(name: str):
    """The catalogue's scenario of that name, or an error listing them."""
    from scenarios.catalogue import catalogue

    known = catalogue(ROOT)
    if name not in known:
        raise SettingsError(f"no scenario {name!r}; one of: {', '.join(known)} (make scenarios describes them)")
    return known[name]


def up(args) -> int:
    chosen = _scenario(args.scenario) if args.scenario else None
    options = MeshOptions(
        root=ROOT,
        run_dir=RUN_DIR,
        ingress_port=env_int(os.environ, "INGRESS_PORT", 8080, 1, 65535),
        **({"policy": chosen.policy, "scenario": chosen.name} if chosen else {}),
        # Debian's prometheus, where installed (apt-get install prometheus).
        prometheus_port=env_int(os.environ, "PROMETHEUS_PORT", 9090, 1, 65535) if prometheus_binary() else None,
        # Debian's prometheus-alertmanager beside it, where installed: it gets the SLO alerts.
        alertmanager_port=(
            env_int(os.environ, "ALERTMANAGER_PORT", 9093, 1, 65535) if prometheus_binary() and alertmanager_binary() else None
        ),
    )
    mesh = Mesh(options, say=lambda line: print(line, flush=True))
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    # `python -m localmesh restart` asks for a rolling restart with SIGUSR1; done here, in the runner.
    restart_asked = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: (restart_asked.set(), stopping.set()))
    print("Starting the local mesh (replicas of k8s/base, policy of istio/)...", flush=True)
    cleared = claim_run_dir(RUN_DIR)  # refuses if one runs already; clears what a killed one left
    if cleared:
        print(cleared, flush=True)
    mesh.start()
    try:
        if chosen is not None:
            from scenarios.local import apply_to_mesh

            apply_to_mesh(mesh, chosen)
        print_status(mesh.state())
        print("\nTry:")
        print("  " + SEED_CURL.format(url=mesh.ingress_url))
        print("  " + SEED_CURL.format(url=mesh.ingress_url).replace("curl -s", "curl -s -H 'x-canary: always'"))
        print(f"  open {mesh.ingress_url}/ in a browser")
        print("  make fault POD=calculator-v1-0 ERRORS=0.5    (make fault-clear ends it)")
        print("  make scenario NAME=no-retries               (make scenarios lists them; NAME=base restores)")
        print("\nCtrl-C to stop.", flush=True)
        while stopping.wait() and restart_asked.is_set():
            restart_asked.clear()
            stopping.clear()
            print("Rolling restart of every replica...", flush=True)
            mesh.rolling_restart()
            print("Rolling restart done.", flush=True)
    finally:
        print("Stopping...", flush=True)
        mesh.stop()
        print("Stopped: no process left.", flush=True)
    return 0


def _fault_of(info) -> str:
    if not info.get("admin_url"):
        return "-"
    try:
        answer = faults.read_fault(info["admin_url"])
    except faults.FaultCommandError:
        return "unknown (admin surface not answering)"
    held = f" ({answer['held']} held)" if answer["fault"]["hang"] else ""
    return faults.describe(answer["fault"]) + held


def slo_status_lines(prometheus_url: str) -> list[str]:
    """The SLOs' budget left and the alerts firing, from the rules' series (slo/rules.yaml)."""
    from localmesh.prometheus import query_vector

    try:
        budgets = query_vector(prometheus_url, "slo:error_budget_remaining:ratio")
        burns = query_vector(prometheus_url, "slo:burn_rate:ratio_rate5m")
        alerts = query_vector(prometheus_url, 'ALERTS{alertstate="firing", slo!=""}')
    except OSError as error:
        return [f"SLOs: Prometheus does not answer ({error})"]
    return slo_lines(budgets, burns, alerts)


def slo_lines(budgets: list[dict], burns: list[dict], alerts: list[dict]) -> list[str]:
    """Pure: lines for make status from Prometheus' answers (``{"metric": {...}, "value": [t, "v"]}``)."""
    from slo.budget import objective

    if not budgets:
        return ["SLOs: no data yet (no request through the ingress within the SLO's window in this Prometheus)"]
    burn_of = {b["metric"].get("slo"): float(b["value"][1]) for b in burns}
    lines = []
    for budget in sorted(budgets, key=lambda b: b["metric"].get("slo", "")):
        slo = budget["metric"].get("slo", "?")
        left = float(budget["value"][1])
        burn = burn_of.get(slo)
        burning = f", burning {burn:.1f}x over the last 5m" if burn is not None else ""
        lines.append(f"SLO {slo}: {max(left, 0.0):.1%} of the {objective().period_label} error budget left{burning}")
    firing = sorted(
        f"{a['metric'].get('severity', '?')}: {a['metric'].get('alertname', '?')} "
        f"({a['metric'].get('slo', '?')}, {a['metric'].get('long_window', '?')}/{a['metric'].get('short_window', '?')})"
        for a in alerts
    )
    lines.append("Alerts firing: " + ("; ".join(firing) if firing else "none"))
    return lines


def print_status(state) -> None:
    print(f"Active scenario: {state['scenario']}")
    print(f"Ingress (Envoy): {state['ingress_url']}")
    print("Replicas:")
    for pod, info in state["services"].items():
        host, port = info["url"].removeprefix("http://").split(":")
        ready = "ready" if http_status(host, int(port), "/readyz") == 200 else "NOT READY"
        print(
            f"  {pod:<16} {info['url']:<24} pid {info['pid']:<8} {ready:<9} restarts: {info['restarts']}"
            f"  fault: {_fault_of(info)}"
        )
    print("Envoys (admin):")
    for name, info in state["envoys"].items():
        print(f"  {name:<24} http://127.0.0.1:{info['admin_port']}  pid {info['pid']}")
    if state.get("prometheus_url"):
        print(f"Prometheus: {state['prometheus_url']}")
        for line in slo_status_lines(state["prometheus_url"]):
            print("  " + line)
    else:
        print("Prometheus: not installed (apt-get install prometheus to have it here)")
    if state.get("alertmanager_url"):
        print(f"Alertmanager: {state['alertmanager_url']}")
    elif state.get("prometheus_url"):
        print("Alertmanager: not installed (apt-get install prometheus-alertmanager to receive the SLO alerts)")
    print("Enforced by the local Envoys: " + ", ".join(state["enforced"]))
    print("On a cluster only: " + ", ".join(state["cluster_only"]))


def scenario(args) -> int:
    chosen = _scenario(args.name)
    say = lambda line: print(line, flush=True)  # noqa: E731
    if args.kind:
        from scenarios.kind import apply_kind

        apply_kind(chosen, ROOT, say=say)
        print(f"Scenario {chosen.name} applied on kind: {chosen.title}")
        return 0
    from scenarios.local import apply_running

    apply_running(RUN_DIR, chosen)
    print(f"Active scenario: {chosen.name}: {chosen.title}")
    print(f"  policy: istio/ + {', '.join(chosen.files())}" if chosen.policy else "  policy: istio/ (the base)")
    print(f"  faults: {chosen.describe_faults()}")
    print("  Envoys reconfigured and faults set at run time: no replica restarted.")
    return 0


def _running_state():
    return running_state(RUN_DIR)  # MeshNotRunning (a RuntimeError) says why not


def _not_running(error: MeshNotRunning) -> int:
    message = str(error)
    print(f"{message[:1].upper()}{message[1:]}.", file=sys.stderr)
    return 1


def _admin_urls(state, pod: str | None) -> dict[str, str]:
    """The admin surfaces of ``pod``, or of every replica that has one."""
    urls = {name: info["admin_url"] for name, info in state["services"].items() if info.get("admin_url")}
    if pod is None:
        return urls
    if pod not in urls:
        raise RuntimeError(f"POD={pod!r}: no replica with faults; one of {', '.join(urls)}")
    return {pod: urls[pod]}


def load(args) -> int:
    from localmesh import traffic
    from localmesh.translate.durations import parse_seconds

    try:
        seconds = float(parse_seconds(args.duration))
        steady = traffic.SteadyLoad(_running_state()["ingress_url"], args.rate, seconds, args.canary)
    except ValueError as error:
        raise SettingsError(str(error)) from None
    canary = ", x-canary: always" if args.canary else ""
    print(f"POST /calcular through {steady.host}:{steady.port}, {args.rate:g}/s for {seconds:g} s{canary}; Ctrl-C stops",
          flush=True)
    traffic.run(steady, lambda line: print(line, flush=True))
    return 0


def fault(args) -> int:
    body = faults.fault_body(args.errors, args.status, args.delay, args.delay_share, args.hang)
    for pod, url in _admin_urls(_running_state(), args.pod).items():
        answer = faults.set_fault(url, body)
        print(f"{pod}: fault {faults.describe(answer['fault'])}")
    return 0


def fault_clear(args) -> int:
    for pod, url in _admin_urls(_running_state(), args.pod).items():
        faults.clear_fault(url)
        print(f"{pod}: fault none")
    return 0


def scenarios(_args) -> int:
    from scenarios.catalogue import catalogue

    for chosen in catalogue(ROOT).values():
        print(f"{chosen.name:<18} {chosen.title}")
    return 0


def status(args) -> int:
    try:
        state = running_state(RUN_DIR)
    except MeshNotRunning as error:
        return _not_running(error)
    if args.json:
        print(json.dumps(state, indent=1))
    else:
        print_status(state)
    return 0


def demo(args) -> int:
    from scenarios import render
    from scenarios.catalogue import verdict as judge

    scenario = _scenario(args.name)
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    run_dir = None
    if args.kind:
        from scenarios.kind import run_kind

        measurement = run_kind(scenario, ROOT, say=say)
    else:
        from scenarios.local import run_local

        # A temporary run directory, removed when the expectation held; kept, with the
        # processes' and Envoys' logs, when it did not.
        run_dir = Path(tempfile.mkdtemp(prefix=f"meshcalc-demo-{scenario.name}-"))
        try:
            measurement = run_local(scenario, ROOT, run_dir, say=say)
        except BaseException:
            say(f"logs kept in {run_dir}/logs")
            raise
    verdict = judge(scenario, measurement)
    if run_dir is not None:
        if verdict.passed:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            say(f"logs kept in {run_dir}/logs")
    if args.json:
        print(json.dumps(render.report(scenario, measurement, verdict), indent=1))
    else:
        print(render.render(scenario, measurement, verdict))
    return verdict.exit_status


def top(args) -> int:
    """The running mesh per workload and version, refreshed every second (localmesh/top.py)."""
    from rich.console import Console

    from localmesh import top as view
    from slo.budget import objective

    try:
        screen = view.Top(_running_state, objective().budget)
    except MeshNotRunning as error:
        return _not_running(error)
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=150)  # a pipe or a file: the whole table, not 80 columns of it
    try:
        return view.run(screen, console, args.once, args.seconds)
    except KeyboardInterrupt:
        return 0
    except MeshNotRunning as error:
        return _not_running(error)
    finally:
        screen.close()


def restart(_args) -> int:
    """Ask the running ``make up`` for a rolling restart, and wait until it is done."""
    try:
        state = running_state(RUN_DIR)  # its runner, checked: never a stranger that got its pid
    except MeshNotRunning as error:
        return _not_running(error)
    os.kill(state["runner_pid"], signal.SIGUSR1)
    done = state["rollouts"] + 1
    deadline = time.monotonic() + RESTART_DEADLINE_SECONDS
    while True:
        try:
            current = running_state(RUN_DIR)
        except MeshNotRunning as error:
            print(f"The local mesh stopped during the restart: {error}.", file=sys.stderr)
            return 1
        if current["rollouts"] >= done:
            break
        if time.monotonic() > deadline:
            print(f"The rolling restart did not finish in {RESTART_DEADLINE_SECONDS} s: see the logs in {RUN_DIR}/logs.",
                  file=sys.stderr)
            return 1
        time.sleep(0.5)
    print("Rolling restart done: every replica, one at a time, without a pause in service.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localmesh", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start the local mesh until Ctrl-C")
    start.add_argument("--scenario", help="start with a scenario applied (the names of `scenarios`)")
    start.set_defaults(run=up)
    switch = commands.add_parser("scenario", help="apply a scenario's policy and faults to the running mesh (base restores)")
    switch.add_argument("name")
    switch.add_argument("--kind", action="store_true", help="to the kind cluster of scripts/kind.sh, not the local mesh")
    switch.set_defaults(run=scenario)
    commands.add_parser("scenarios", help="list the scenarios").set_defaults(run=scenarios)
    show = commands.add_parser("status", help="what runs where")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=status)
    commands.add_parser("restart", help="restart every replica in turn, as a rolling update").set_defaults(run=restart)
    steady = commands.add_parser("load", help="steady load through the ingress, with a live line of answers")
    steady.add_argument("--rate", type=float, default=10.0, help="requests per second (default 10)")
    steady.add_argument("--duration", default="60s", help="how long, as a duration: 60s, 5m (default 60s, at most 1h)")
    steady.add_argument("--canary", action="store_true", help="send x-canary: always (every request to v2)")
    steady.set_defaults(run=load)
    set_fault = commands.add_parser("fault", help="set one calculator replica's fault, at run time (no restart)")
    set_fault.add_argument("pod", nargs="?", help="e.g. calculator-v1-0; every replica with faults when left out")
    faults.add_fault_options(set_fault)
    set_fault.set_defaults(run=fault)
    clear = commands.add_parser("fault-clear", help="no fault on one replica, or on every one")
    clear.add_argument("pod", nargs="?")
    clear.set_defaults(run=fault_clear)
    run_demo = commands.add_parser("demo", help="apply a scenario, load it through the ingress, print a verdict")
    run_demo.add_argument("name", help="the scenario (`scenarios` lists them)")
    run_demo.add_argument("--json", action="store_true", help="the report as JSON on stdout (progress stays on stderr)")
    run_demo.add_argument("--kind", action="store_true", help="against the kind cluster of scripts/kind.sh, not the local mesh")
    run_demo.set_defaults(run=demo)
    watch = commands.add_parser("top", help="per workload and version: rates, success, latency, retries, ejections, burn")
    watch.add_argument("--once", action="store_true", help="print one frame (after a second of counting) and exit")
    watch.add_argument("--seconds", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    watch.set_defaults(run=top)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except MeshNotRunning as error:  # one answer, exit 1, whichever command found no mesh
        return _not_running(error)
    except (TranslationError, SettingsError, RuntimeError) as error:  # FaultCommandError too
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
