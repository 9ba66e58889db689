"""The kind backend: the same scenarios against the cluster of ``scripts/kind.sh up``.

Not run against a cluster here (no Docker engine on the project's machines; its pure parts and
the commands ``apply_kind`` gives are tested): kept small, and
every step is a ``scripts/kind.sh`` or ``kubectl`` command a reader can run by
hand (``apply_kind`` prints each). What differs from the local mesh, and the table says so:

- A scenario's fault names a pod as the local mesh does (``calculator-v1-0``: the
  first pod of Deployment calculator-v1); here that is the Deployment's first pod
  in name order, reached through its admin surface with ``kubectl exec`` (no rollout).
- The replicas' own counters and the sidecars' Envoy counters are not read
  (they are in the cluster's Prometheus): those checks show "n/a", and the
  verdict is over the checks measured, from the clients (hey) and the gateway
  sidecars' access logs (``kubectl logs``, Istio's default text format).
- istiod pushes a scenario to the sidecars within about a second of the apply;
  nothing here waits for the push.
- kill-replica deletes a calculator-v1 pod (``--force --grace-period=0``):
  Kubernetes creates another; "back" is the Deployment ready again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from calculator.admin_client import fault_options
from localmesh.load import run_load
from localmesh.observe import flags_of
from localmesh.processes import wait_until
from scenarios.catalogue import Scenario
from scenarios.measurement import Measurement, load_figures, summarize_calls
from scenarios.render import Progress

NAMESPACE = "meshcalc"
INGRESS_URL = os.environ.get("KIND_INGRESS_URL", "http://localhost:8080")
CONTEXT = f"kind-{os.environ.get('KIND_CLUSTER_NAME', 'meshcalc')}"

# Istio's default TEXT access log format, up to the upstream cluster.
_TEXT_LOG = re.compile(
    r'^\[(?P<start_time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>[^"]*)" '
    r"(?P<response_code>\d+) (?P<response_flags>\S+) (?P<response_code_details>\S+) \S+ "
    r'"[^"]*" \d+ \d+ (?P<duration>\d+) \S+ "[^"]*" "[^"]*" "(?P<request_id>[^"]*)" '
    r'"(?P<authority>[^"]*)" "(?P<upstream_host>[^"]*)" (?P<upstream_cluster>\S+)'
)


def parse_text_access_log(line: str) -> dict | None:
    """One line of Istio's default access log as the JSON entries of the local mesh name them. Pure."""
    match = _TEXT_LOG.match(line.strip())
    if match is None:
        return None
    entry = match.groupdict()
    entry["response_code"] = int(entry["response_code"])
    entry["duration"] = int(entry["duration"])
    return entry


def cluster_pod(local_pod: str, pods_by_name: list[str]) -> str:
    """The cluster's pod for a local pod name: "calculator-v1-1" is the second pod of Deployment
    calculator-v1 in name order (``pods_by_name``: every pod of the namespace). Pure."""
    deployment, _, index = local_pod.rpartition("-")
    pattern = re.compile(rf"{re.escape(deployment)}-[a-z0-9]+-[a-z0-9]+")
    mine = sorted(name for name in pods_by_name if pattern.fullmatch(name))
    if not index.isdigit() or int(index) >= len(mine):
        raise RuntimeError(f"no pod for {local_pod}: Deployment {deployment} has {len(mine)} ({' '.join(mine) or 'none'})")
    return mine[int(index)]


def kubectl(*args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        ["kubectl", "--context", CONTEXT, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _entries(selector: str, namespace: str, container: str, since: datetime) -> list[dict]:
    text = kubectl("-n", namespace, "logs", "-l", selector, "-c", container, "--tail=-1",
                   "--since-time", since.strftime("%Y-%m-%dT%H:%M:%SZ"))
    cutoff = since.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    entries = [e for e in map(parse_text_access_log, text.splitlines()) if e and e["path"] == "/calcular"]
    return [e for e in entries if e["start_time"] >= cutoff]


def _need(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"not installed: {', '.join(missing)} (docs/kind.md; hey: apt-get install hey)")


def apply_kind(scenario: Scenario, root: Path, say=lambda line: None) -> None:
    """The scenario on the cluster: the base back, then its policy files, then its faults."""
    _need("kubectl")
    kind_sh = str(Path(root) / "scripts" / "kind.sh")

    def script(*args: str) -> None:
        say(f"$ scripts/kind.sh {' '.join(args)}")
        subprocess.run([kind_sh, *args], check=True, timeout=900)

    script("reset")
    for name in scenario.policy:
        script("policy", name)
    if scenario.faults:
        pods = kubectl("-n", NAMESPACE, "get", "pods", "-l", "app=calculator", "-o", "jsonpath={.items[*].metadata.name}")
        for local_pod, fault in scenario.faults.items():
            script("fault", cluster_pod(local_pod, pods.split()), *fault_options(fault.to_json()))


def run_kind(scenario: Scenario, root: Path, say=lambda line: None) -> Measurement:
    _need("kubectl", "hey")
    apply_kind(scenario, root, say)
    try:
        return _measure(scenario)
    finally:
        say("$ scripts/kind.sh reset")
        subprocess.run([str(Path(root) / "scripts" / "kind.sh"), "reset"], check=True, timeout=900)


def _measure(scenario: Scenario) -> Measurement:
    spec = scenario.load
    started = datetime.now(timezone.utc)
    killed: dict = {}
    notes = ["kind: the replicas' and sidecars' own counters are not read (n/a checks)"]
    killer = None
    if scenario.kill:
        killer = threading.Thread(target=_kill, args=(scenario, killed), daemon=True)
        killer.start()
    progress = Progress(scenario.name, spec.requests)
    result = run_load(INGRESS_URL, spec, on_tick=lambda elapsed: progress.tick(elapsed, None))
    progress.finish(result.seconds, len(result.samples))
    if killer is not None:
        killer.join(180)
        if killed.get("error"):
            notes.append(f"kill: {killed.pop('error')}")
    calls = summarize_calls(_entries("app=gateway", NAMESPACE, "istio-proxy", started))
    ingress = _entries("app=istio-ingressgateway", "istio-system", "istio-proxy", started)
    calls["attempts"] = None  # not in Istio's default format
    return Measurement(
        where="kind",
        **load_figures(result),
        ingress_flags=dict(Counter(f for e in ingress for f in flags_of(e))),
        killed=killed or None,
        notes=notes,
        **calls,
    )


def _kill(scenario: Scenario, info: dict) -> None:
    """Delete the scenario's pod once about ``kill_at`` of the load has run; what went wrong, in
    ``info["error"]`` (the measurement's notes say it)."""
    try:
        _delete_and_time(scenario, info)
    except BaseException as error:  # noqa: BLE001 - reported, not raised in a thread nobody joins
        info["error"] = f"{type(error).__name__}: {error}"


def _delete_and_time(scenario: Scenario, info: dict) -> None:
    spec = scenario.load
    expected = spec.requests / (spec.rate * spec.concurrency) if spec.rate else 5.0
    deployment = scenario.kill.rsplit("-", 1)[0]
    started = time.monotonic()
    # Pacing, not synchronisation: the kind cluster's access logs are not at hand to count answers.
    threading.Event().wait(scenario.kill_at * expected)
    selector = f"app=calculator,version={deployment.rsplit('-', 1)[1]}"
    names = "jsonpath={.items[*].metadata.name}"
    pod = cluster_pod(scenario.kill, kubectl("-n", NAMESPACE, "get", "pods", "-l", selector, "-o", names).split())
    kubectl("-n", NAMESPACE, "delete", "pod", pod, "--force", "--grace-period=0", "--wait=false")
    killed_at = time.monotonic()
    info.update(pod=pod, at=killed_at - started, back_after=None)
    wanted = kubectl("-n", NAMESPACE, "get", "deployment", deployment, "-o", "jsonpath={.spec.replicas}").strip()

    def ready():
        # The deleted pod gone, and as many ready as the Deployment wants.
        gone = pod not in kubectl("-n", NAMESPACE, "get", "pods", "-l", selector, "-o", names).split()
        now = kubectl("-n", NAMESPACE, "get", "deployment", deployment, "-o", "jsonpath={.status.readyReplicas}")
        return gone and now.strip() == wanted

    wait_until(ready, 120, interval=1, what=f"{deployment} ready again")
    info["back_after"] = time.monotonic() - killed_at
