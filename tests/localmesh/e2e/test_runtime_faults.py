"""Faults at run time on the running mesh, the way a person plays with it: `python -m localmesh
fault` (make fault) breaks one replica without restarting anything, the scenario decides whether
clients see it, `fault-clear` heals it; the admin surface stays out of the mesh's reach."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from tests.localmesh.e2e.support import calcular_requests, load, scenario
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
        # canary-100-0: every request to v1, so half of calculator-v1-0's share fails.
        with scenario(mesh, "canary-100-0+outlier-detection-lenient+retries-off"):
            before = calcular_requests(mesh.services[BROKEN])
            without = Counter(a.status for a in load(mesh, 200))
            failed_at_replica = (calcular_requests(mesh.services[BROKEN]) - before)[503]
        with scenario(mesh, "canary-100-0+outlier-detection-lenient"):
            before = calcular_requests(mesh.services[BROKEN])
            with_retries = Counter(a.status for a in load(mesh, 200))
            hidden = (calcular_requests(mesh.services[BROKEN]) - before)[503]
    finally:
        assert cli(mesh, "fault-clear").count("fault none") == 3
    print(f"fault by hand: retries off {dict(without)} ({failed_at_replica} failed at {BROKEN}); "
          f"retries on {dict(with_retries)} ({hidden} failed at {BROKEN}, all retried)")
    # Without retries, each of the replica's own 503s is a client's.
    assert without[503] == failed_at_replica > 0
    assert with_retries == {200: 200} and hidden > 0
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
