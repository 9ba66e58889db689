"""Faults at run time on the running mesh, the way a person plays with it: `python -m localmesh
fault` (make fault) breaks one replica without restarting anything, the scenario decides whether
clients see it, `fault-clear` heals it; the admin surface stays out of the mesh's reach."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from tests.localmesh.e2e.support import calcular_requests, cluster_stat, load, policy
from tests.support import ROOT, get, post_json

pytestmark = pytest.mark.processes

BROKEN = "calculator-v1-0"


def cli(mesh, *arguments: str) -> str:
    """``python -m localmesh ...`` against this mesh, as `make` runs it from another terminal."""
    result = subprocess.run(
        [sys.executable, "-m", "localmesh", *arguments],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "LOCALMESH_RUN_DIR": str(mesh.options.run_dir)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_replica_broken_by_hand_shows_only_without_retries(mesh):
    restarts = {pod: service.restarts for pod, service in mesh.services.items()}
    assert cli(mesh, "fault", BROKEN, "--errors", "0.5").strip() == f"{BROKEN}: fault 50% answered 503"
    assert "fault: 50% answered 503" in next(line for line in cli(mesh, "status").splitlines() if BROKEN in line)
    try:
        # virtual-service-calculator-100-0: every request to v1, so half of calculator-v1-0's share fails.
        with policy(mesh, "virtual-service-calculator-100-0", "destination-rule-calculator-lenient-ejection", "virtual-service-calculator-no-retries"):
            before = calcular_requests(mesh.services[BROKEN])
            without = Counter(a.status for a in load(mesh, 200))
            failed_at_replica = (calcular_requests(mesh.services[BROKEN]) - before)[503]
        with policy(mesh, "virtual-service-calculator-100-0", "destination-rule-calculator-lenient-ejection"):
            before = calcular_requests(mesh.services[BROKEN])
            retried_before = cluster_stat(mesh, "v1", "retry.upstream_rq_503")
            with_retries = Counter(a.status for a in load(mesh, 200))
            hidden = (calcular_requests(mesh.services[BROKEN]) - before)[503]
            retried = cluster_stat(mesh, "v1", "retry.upstream_rq_503") - retried_before
    finally:
        assert cli(mesh, "fault-clear").count("fault none") == 3
    print(f"fault by hand: retries off {dict(without)} ({failed_at_replica} failed at {BROKEN}); "
          f"retries on {dict(with_retries)} ({hidden} failed at {BROKEN}, {retried} retried)")
    # Without retries, each of the replica's own 503s is a client's.
    assert without[503] == failed_at_replica > 0
    # With them, each was retried, but for the rare request whose every attempt met it (URX: Envoy's
    # least-request picks the replica that fails fast; docs/fault-tolerance.md), as in test_retries.py.
    assert hidden > 0 and hidden == retried + with_retries[503]
    assert with_retries[200] >= 0.99 * 200
    assert {pod: service.restarts for pod, service in mesh.services.items()} == restarts
    assert "fault: none" in next(line for line in cli(mesh, "status").splitlines() if BROKEN in line)


def test_the_admin_surface_is_out_of_the_meshs_reach(mesh):
    admin_port = mesh.plan.admin[BROKEN]
    # Through the ingress: not a public path (403 from its policy), whatever the method.
    assert get(f"{mesh.ingress_url}/fault")[0] == 403
    assert post_json(f"{mesh.ingress_url}/fault", {"errors": 1.0})[0] == 403
    # From a gateway, through its sidecar (as the app's HTTP_PROXY): no Service port leads to it.
    sidecar = mesh.plan.sidecars["gateway-0"][0]
    for host in ("calculator", f"calculator:{admin_port}", f"127.0.0.1:{admin_port}"):
        status, _, _ = get(f"http://127.0.0.1:{sidecar}/fault", headers={"Host": host})
        assert status == 404, host
    # Only the replica's own loopback port answers, and it was not changed by any of the above.
    assert cli(mesh, "status").count("fault: none") == 3


def test_make_load_shows_the_answers_live_and_stops_on_ctrl_c(mesh):
    output = cli(mesh, "load", "--rate", "20", "--duration", "2s")
    lines = output.splitlines()
    assert lines[0].startswith("POST /calcular through 127.0.0.1:")
    assert any(" sent  200 v1 " in line for line in lines[1:-1])
    total = lines[-1]
    assert total.startswith("total ") and "no answer" not in total
    sent = int(total.split(" sent")[0].split()[-1])
    assert 30 <= sent <= 40  # 20/s for 2 s, paced

    process = subprocess.Popen(
        [sys.executable, "-m", "localmesh", "load", "--rate", "10", "--duration", "30s", "--canary"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "LOCALMESH_RUN_DIR": str(mesh.options.run_dir)},
    )
    try:
        assert process.stdout.readline().startswith("POST /calcular")
        assert " 200 v2 " in process.stdout.readline()  # the first live line: every answer from v2
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "stopping (Ctrl-C)" in rest and rest.splitlines()[-1].startswith("total ")
    assert " v1 " not in rest.splitlines()[-1]
