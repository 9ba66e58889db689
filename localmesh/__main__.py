"""``python -m localmesh``: the local mesh's command line.

    up [--scenario NAME] [--set-env POD:KEY=VALUE ...]   start it, until Ctrl-C
    scenario NAME|base                                   switch the running mesh's scenario
    scenarios                                            list the scenarios
    status [--json]                                      what runs where
    restart                                              a rolling restart of every replica, as Kubernetes does it
    fault POD [--errors X] [--status N] [--delay 2s] [--delay-share X] [--hang]
                                                         one calculator replica's fault, at run time
    fault-clear [POD]                                    no fault on one replica, or on all
    load [--rate 10] [--duration 60s] [--canary]         steady load through the ingress, a live line a second
    demo NAME [--json] [--kind]                          a scenario applied, loaded and judged
    demo --list                                          the demo scenarios
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
from localmesh.loader import Layout
from localmesh.mesh import Mesh, MeshOptions, read_state, switch_running
from localmesh.processes import http_status
from localmesh.prometheus import prometheus_binary
from localmesh.translate import TranslationError
from servicekit.settings import SettingsError, env_int

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = Path(os.environ.get("LOCALMESH_RUN_DIR", ROOT / ".run"))
SEED_CURL = (
    "curl -s -X POST {url}/calcular -H 'Content-Type: application/json' "
    "-d '{{\"operacion\": \"dividir\", \"numero1\": 7, \"numero2\": 2}}'"
)


def _pod_env(assignments: list[str]) -> dict[str, dict[str, str]]:
    result: dict[str, dict[str, str]] = {}
    for assignment in assignments:
        pod, _, variable = assignment.partition(":")
        key, equals, value = variable.partition("=")
        if not (pod and key and equals):
            raise SettingsError(f"--set-env {assignment!r}: expected POD:KEY=VALUE")
        result.setdefault(pod, {})[key] = value
    return result


def up(args) -> int:
    options = MeshOptions(
        root=ROOT,
        run_dir=RUN_DIR,
        ingress_port=env_int(os.environ, "INGRESS_PORT", 8080, 1, 65535),
        scenario=args.scenario,
        pod_env=_pod_env(args.set_env),
        # Debian's prometheus, where installed (apt-get install prometheus).
        prometheus_port=env_int(os.environ, "PROMETHEUS_PORT", 9090, 1, 65535) if prometheus_binary() else None,
    )
    mesh = Mesh(options, say=lambda line: print(line, flush=True))
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    # `python -m localmesh restart` asks for a rolling restart with SIGUSR1; done here, in the runner.
    restart_asked = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: (restart_asked.set(), stopping.set()))
    print("Starting the local mesh (replicas of k8s/base, policy of istio/)...", flush=True)
    mesh.start()
    try:
        print_status(mesh.state())
        print("\nTry:")
        print("  " + SEED_CURL.format(url=mesh.ingress_url))
        print("  " + SEED_CURL.format(url=mesh.ingress_url).replace("curl -s", "curl -s -H 'x-canary: always'"))
        print(f"  open {mesh.ingress_url}/ in a browser")
        print("  make fault POD=calculator-v1-0 ERRORS=0.5    (make fault-clear ends it)")
        print("  make scenario NAME=retries-off              (make scenarios lists them; NAME=base restores)")
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
    else:
        print("Prometheus: not installed (apt-get install prometheus to have it here)")
    print("Enforced by the local Envoys: " + ", ".join(state["enforced"]))
    print("On a cluster only: " + ", ".join(state["cluster_only"]))


def scenario(args) -> int:
    state = switch_running(RUN_DIR, None if args.name == "base" else args.name)
    print(f"Active scenario: {state['scenario']} (Envoys reconfigured, no service restarted)")
    return 0


def _running_state():
    state = read_state(RUN_DIR)
    if state is None:
        raise RuntimeError("the local mesh is not running (make up)")
    return state


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
    for name in ["base", *Layout(ROOT).scenario_names()]:
        print(name)
    return 0


def status(args) -> int:
    state = read_state(RUN_DIR)
    if state is None:
        print("The local mesh is not running (make up).", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(state, indent=1))
    else:
        print_status(state)
    return 0


def demo(args) -> int:
    from localmesh import demo as demos

    if args.list or not args.name:
        stream = sys.stdout if args.list else sys.stderr
        for scenario in demos.SCENARIOS.values():
            print(f"{scenario.name:<18} {scenario.title}", file=stream)
        return 0 if args.list else 2
    scenario = demos.SCENARIOS.get(args.name)
    if scenario is None:
        print(f"error: no demo {args.name!r}; one of: {', '.join(demos.SCENARIOS)}", file=sys.stderr)
        return 2
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    run_dir = None
    if args.kind:
        from localmesh import demo_kind

        measurement = demo_kind.run_kind(scenario, ROOT, say=say)
    else:
        # A temporary run directory, removed when the expectation held; kept, with the
        # processes' and Envoys' logs, when it did not.
        run_dir = Path(tempfile.mkdtemp(prefix=f"meshcalc-demo-{scenario.name}-"))
        try:
            measurement = demos.run_local(scenario, ROOT, run_dir, say=say)
        except BaseException:
            say(f"logs kept in {run_dir}/logs")
            raise
    verdict = demos.verdict(scenario, measurement)
    if run_dir is not None:
        if verdict.passed:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            say(f"logs kept in {run_dir}/logs")
    if args.json:
        print(json.dumps(demos.report(scenario, measurement, verdict), indent=1))
    else:
        print(demos.render(scenario, measurement, verdict))
    return verdict.exit_status


def restart(_args) -> int:
    """Ask the running ``make up`` for a rolling restart, and wait until it is done."""
    state = read_state(RUN_DIR)
    if state is None:
        print("The local mesh is not running (make up).", file=sys.stderr)
        return 1
    os.kill(state["runner_pid"], signal.SIGUSR1)
    done = state["rollouts"] + 1
    deadline = time.monotonic() + 600
    while True:
        current = read_state(RUN_DIR)
        if current is None:
            print("The local mesh stopped during the restart.", file=sys.stderr)
            return 1
        if current["rollouts"] >= done:
            break
        if time.monotonic() > deadline:
            print("The rolling restart did not finish in 600 s: see the logs in .run/logs.", file=sys.stderr)
            return 1
        time.sleep(0.5)
    print("Rolling restart done: every replica, one at a time, without a pause in service.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localmesh", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start the local mesh until Ctrl-C")
    start.add_argument("--scenario", help="start with a scenario of istio/scenarios/ applied")
    start.add_argument("--set-env", action="append", default=[], metavar="POD:KEY=VALUE",
                       help="extra environment for one replica, e.g. calculator-v1-0:FAULT_FAILURE_RATE=0.5")
    start.set_defaults(run=up)
    switch = commands.add_parser("scenario", help="switch the running mesh to a scenario (base restores)")
    switch.add_argument("name")
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
    run_demo.add_argument("name", nargs="?", help="the scenario (demo --list lists them)")
    run_demo.add_argument("--json", action="store_true", help="the report as JSON on stdout (progress stays on stderr)")
    run_demo.add_argument("--kind", action="store_true", help="against the kind cluster of scripts/kind.sh, not the local mesh")
    run_demo.add_argument("--list", action="store_true", help="list the scenarios")
    run_demo.set_defaults(run=demo)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (TranslationError, SettingsError, RuntimeError) as error:  # FaultCommandError too
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
