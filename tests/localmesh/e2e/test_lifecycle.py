"""The runner's processes: a crashed replica comes back, as a ReplicaSet would bring it, and
stopping the mesh (what Ctrl-C does) leaves no process behind."""

import os
import signal

import pytest

from localmesh.processes import wait_until
from tests.localmesh.e2e.support import (
    calcular_requests,
    host_of,
    load,
    processes_in_sessions,
    sidecar_entries,
)
from tests.support import post_json, running_mesh, statuses

pytestmark = pytest.mark.processes


def test_a_crashed_replica_is_restarted_and_stop_leaves_no_process(tmp_path):
    with running_mesh(tmp_path) as mesh:
        # Each service and Envoy leads its own session: whatever it forks stays in it.
        sessions = {s.pid for s in mesh.services.values()} | {e.process.pid for e in mesh.envoys.values()}
        replica = mesh.services["calculator-v1-0"]
        crashed = replica.pid
        os.kill(crashed, signal.SIGKILL)  # the gunicorn master, as the OOM killer would

        wait_until(lambda: replica.restarts == 1 and replica.pid != crashed, 10, what="calculator-v1-0 restarted")
        replica.wait_ready(30)  # binding its port again may wait for the old worker to go
        sessions.add(replica.pid)
        status, _, body = post_json(f"{replica.url}/calcular", {"operacion": "sumar", "numero1": 1, "numero2": 1})
        assert (status, body["version"]) == (200, "v1")
        # Back in the mesh: the sidecars send it its share again.
        answers = load(mesh, 40)
        assert statuses(answers) == {200: 40}
        served = calcular_requests(replica)[200]
        ids = [a.trace_id for a in answers]
        wait_until(lambda: len(sidecar_entries(mesh, ids)) == len(ids), 5, what="access logs")
        hosts = [entry["upstream_host"] for entry in sidecar_entries(mesh, ids).values()]
        print(f"lifecycle: pid {crashed} killed, restarted as {replica.pid}; it then served {served} of 40")
        assert served - 1 == hosts.count(host_of(replica)) > 0
        assert processes_in_sessions(sessions), "the mesh's processes, seen while it runs"

    # Out of the with block: mesh.stop() has run.
    left = processes_in_sessions(sessions)
    assert left == [], f"processes left after stop: {left}"
    for pid in sessions:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
