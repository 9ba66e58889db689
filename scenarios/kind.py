"""``demo NAME --kind``: the same scenario against the kind cluster of ``scripts/kind.sh up``.

Untested here (no Docker engine on the project's machines): kept small, and
every step is a ``scripts/kind.sh`` or ``kubectl`` command a reader can run by
hand. What differs from the local mesh, and the table says so:

- A fault knob is an env var of a Deployment: ``kubectl set env`` restarts every
  pod of it. A scenario that fails one replica among healthy ones (retries,
  no-retries, outlier-detection) therefore does not run here.
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

from localmesh.demo import Measurement, Progress, Scenario, load_figures, summarize_calls
from localmesh.load import run_load
from localmesh.observe import flags_of
from localmesh.processes import wait_until

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


def deployment_env(pod_env: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """A scenario's per-pod knobs as per-Deployment env ("calculator-v1-0" -> calculator-v1). Pure."""
    found: dict[str, dict[str, str]] = {}
    for pod, env in pod_env.items():
        deployment = pod.rsplit("-", 1)[0]
        if found.setdefault(deployment, env) != env:
            raise ValueError(f"{deployment}: its pods have different knobs, which a Deployment cannot give")
    return found


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


def run_kind(scenario: Scenario, root: Path, say=lambda line: None) -> Measurement:
    if scenario.kind_limit:
        raise RuntimeError(f"{scenario.name} does not run on kind: {scenario.kind_limit}")
    missing = [tool for tool in ("kubectl", "hey") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"not installed: {', '.join(missing)} (docs/kind.md; hey: apt-get install hey)")
    kind_sh = str(Path(root) / "scripts" / "kind.sh")

    def script(*args: str) -> None:
        say(f"$ scripts/kind.sh {' '.join(args)}")
        subprocess.run([kind_sh, *args], check=True, timeout=900)

    script("reset")
    try:
        for part in (scenario.istio or "").split("+"):
            if part:
                script("scenario", part)
        for deployment, env in deployment_env(scenario.pod_env).items():
            say(f"$ kubectl set env deployment/{deployment} {' '.join(f'{k}={v}' for k, v in env.items())}")
            kubectl("-n", NAMESPACE, "set", "env", f"deployment/{deployment}", *(f"{k}={v}" for k, v in env.items()))
            kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{deployment}", "--timeout=300s", timeout=330)
        return _measure(scenario)
    finally:
        script("reset")


def _measure(scenario: Scenario) -> Measurement:
    spec = scenario.load
    started = datetime.now(timezone.utc)
    killed: dict = {}
    killer = None
    if scenario.kill:
        killer = threading.Thread(target=_kill, args=(scenario, killed), daemon=True)
        killer.start()
    progress = Progress(scenario.name, spec.requests)
    result = run_load(INGRESS_URL, spec, on_tick=lambda elapsed: progress.tick(elapsed, None))
    progress.finish(result.seconds, len(result.samples))
    if killer is not None:
        killer.join(180)
    calls = summarize_calls(_entries("app=gateway", NAMESPACE, "istio-proxy", started))
    ingress = _entries("app=istio-ingressgateway", "istio-system", "istio-proxy", started)
    calls["attempts"] = None  # not in Istio's default format
    return Measurement(
        where="kind",
        **load_figures(result),
        ingress_flags=dict(Counter(f for e in ingress for f in flags_of(e))),
        killed=killed or None,
        notes=["kind: the replicas' and sidecars' own counters are not read (n/a checks)"],
        **calls,
    )


def _kill(scenario: Scenario, info: dict) -> None:
    """Delete one pod of the scenario's Deployment once about ``kill_at`` of the load has run."""
    spec = scenario.load
    expected = spec.requests / (spec.rate * spec.concurrency) if spec.rate else 5.0
    deployment = scenario.kill.rsplit("-", 1)[0]
    started = time.monotonic()
    # Pacing, not synchronisation: the kind cluster's access logs are not at hand to count answers.
    threading.Event().wait(scenario.kill_at * expected)
    selector = f"app=calculator,version={deployment.rsplit('-', 1)[1]}"
    names = "jsonpath={.items[*].metadata.name}"
    pod = kubectl("-n", NAMESPACE, "get", "pods", "-l", selector, "-o", names).split()[0]
    kubectl("-n", NAMESPACE, "delete", "pod", pod, "--force", "--grace-period=0", "--wait=false")
    killed_at = time.monotonic()
    info.update(pod=pod, at=killed_at - started, back_after=None)
    wanted = kubectl("-n", NAMESPACE, "get", "deployment", deployment, "-o", "jsonpath={.spec.replicas}").strip()

    def ready():
        # The deleted pod gone, and as many ready as the Deployment wants.
        gone = pod not in kubectl("-n", NAMESPACE, "get", "pods", "-l", selector, "-o", names).split()
        now = kubectl("-n", NAMESPACE, "get", "deployment", deployment, "-o", "jsonpath={.status.readyReplicas}")
        return gone and now.strip() == wanted

    try:
        wait_until(ready, 120, interval=1, what=f"{deployment} ready again")
        info["back_after"] = time.monotonic() - killed_at
    except TimeoutError:
        pass
