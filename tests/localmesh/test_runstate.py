"""A `make up` killed with SIGKILL: the next command notices, with real processes.

The runner's children each lead a process group of their own, so a SIGKILL of the runner (or of
its group) leaves them running, orphaned, holding their ports. The first command that reads the
state after that ends those still recorded (pid and start time), removes the stale file and says
the mesh is not running; nothing else is signalled, not even a stranger that got a recorded pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from localmesh.mesh import STATE_FILE, MeshNotRunning, claim_run_dir, read_state, running_state
from localmesh.processes import free_port, wait_until
from localmesh.prometheus import alertmanager_binary, prometheus_binary
from localmesh.runstate import alive, end_orphans, process_start, recorded_processes
from tests.support import MESH_TEST_ENV, ROOT
from tests.tools import needs_envoy

pytestmark = pytest.mark.processes


def sleeper() -> subprocess.Popen:
    """A stranger: a process the mesh never started, in a group of its own."""
    return subprocess.Popen(["sleep", "600"], start_new_session=True)


def test_a_live_process_has_a_start_time_and_a_dead_one_none():
    process = sleeper()
    try:
        started = process_start(process.pid)
        assert started is not None and process_start(process.pid) == started
        assert alive(process.pid, started)
        assert not alive(process.pid, started + "0")  # the same pid, another process
        assert not alive(process.pid, None)
        process.kill()
        # Killed and not yet reaped: a zombie is dead already.
        wait_until(lambda: process_start(process.pid) is None, 10, what="the zombie seen as dead")
    finally:
        process.kill()
        process.wait()
    assert process_start(process.pid) is None
    assert process_start(None) is None


def stale_state(run_dir: Path, runner: int, runner_start: str | None, children: dict) -> dict:
    state = {
        "runner_pid": runner,
        "runner_start": runner_start,
        "ingress_url": "http://127.0.0.1:1",
        "services": {name: {"pid": pid, "start": start} for name, (pid, start) in children.items()},
        "envoys": {},
        "prometheus": None,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STATE_FILE).write_text(json.dumps(state))
    return state


def test_a_stranger_with_a_recorded_pid_is_never_signalled(tmp_path):
    stranger = sleeper()
    try:
        # The runner's pid and a child's now belong to the stranger, who started at another time.
        stale_state(tmp_path, stranger.pid, "1", {"calculator-v1-0": (stranger.pid, "1")})
        result = run_localmesh(tmp_path, "restart")  # would send SIGUSR1: deadly for sleep
        assert result.returncode == 1
        assert "not running" in result.stderr and f"pid {stranger.pid}) was killed" in result.stderr
        assert "stopped" not in result.stderr
        assert stranger.poll() is None, "the stranger was signalled"
        assert not (tmp_path / STATE_FILE).exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_an_orphan_still_recorded_is_ended_with_its_group(tmp_path):
    orphan = sleeper()
    try:
        runner = sleeper()
        runner_start = process_start(runner.pid)
        runner.kill()
        runner.wait()
        state = stale_state(tmp_path, runner.pid, runner_start, {"gateway-0": (orphan.pid, process_start(orphan.pid))})
        assert recorded_processes(state) == {"gateway-0": (orphan.pid, process_start(orphan.pid))}
        with pytest.raises(MeshNotRunning, match=r"stopped the 1 process\(es\) it had left running"):
            running_state(tmp_path)
        assert orphan.wait(10) == -signal.SIGKILL
        assert not (tmp_path / STATE_FILE).exists()
        with pytest.raises(MeshNotRunning, match=r"^the local mesh is not running \(make up\)$"):
            running_state(tmp_path)
        assert end_orphans(state) == []  # gone: nothing signalled twice
    finally:
        orphan.kill()
        orphan.wait()


def test_a_new_up_refuses_a_live_runner_and_clears_a_dead_ones_state(tmp_path):
    live = sleeper()
    try:
        stale_state(tmp_path, live.pid, process_start(live.pid), {})
        with pytest.raises(RuntimeError, match="already runs from"):
            claim_run_dir(tmp_path)
        assert (tmp_path / STATE_FILE).exists()
    finally:
        live.kill()
        live.wait()
    assert claim_run_dir(tmp_path).startswith("A previous local mesh did not stop: its runner")
    assert claim_run_dir(tmp_path) is None


# -- the real thing: python -m localmesh up, killed ----------------------------------------------


def localmesh_env(run_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LOCALMESH_RUN_DIR": str(run_dir),
        "INGRESS_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(free_port()),
        "ALERTMANAGER_PORT": str(free_port()),
        **MESH_TEST_ENV,
    }


def run_localmesh(run_dir: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "localmesh", *arguments],
        cwd=ROOT, env=localmesh_env(run_dir), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def start_up(run_dir: Path, output: Path) -> subprocess.Popen:
    """``python -m localmesh up`` in a group of its own (as a terminal's job is), ready."""
    with open(output, "wb") as log:
        runner = subprocess.Popen(
            [sys.executable, "-m", "localmesh", "up"],
            cwd=ROOT, env=localmesh_env(run_dir), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def ready():
        if runner.poll() is not None:
            raise AssertionError(f"make up exited {runner.returncode}:\n{output.read_text()}")
        return "Ctrl-C to stop." in output.read_text()

    wait_until(ready, 90, what="the local mesh ready")
    return runner


def all_dead(state) -> bool:
    return not any(alive(pid, start) for pid, start in recorded_processes(state).values())


@needs_envoy
def test_a_killed_up_leaves_orphans_that_the_next_command_ends(tmp_path):
    run_dir, output = tmp_path / "run", tmp_path / "up.log"
    runner = start_up(run_dir, output)
    state = read_state(run_dir)
    try:
        assert alive(state["runner_pid"], state["runner_start"]) and runner.pid == state["runner_pid"]
        children = recorded_processes(state)
        assert len(children) >= 8  # 5 replicas, 3 Envoys (and Prometheus, Alertmanager where installed)
        assert ("alertmanager" in children) == bool(prometheus_binary() and alertmanager_binary())

        # A second `up` from the same run directory is refused while the first runs.
        second = run_localmesh(run_dir, "up")
        assert second.returncode == 2 and "already runs from" in second.stderr, second.stderr

        os.killpg(runner.pid, signal.SIGKILL)
        assert runner.wait(10) == -signal.SIGKILL
        # The children outlive it: orphans, still the processes recorded.
        assert all(alive(pid, start) for pid, start in children.values())

        for command in ("status", "fault-clear", "load", "restart", "scenario"):
            arguments = [command, "base"] if command == "scenario" else [command]
            result = run_localmesh(run_dir, *arguments)
            assert result.returncode == 1, (command, result)
            assert "not running" in result.stderr, (command, result.stderr)
            if command == "status":  # the first to read it cleans up, and says so
                assert f"its runner (pid {runner.pid}) was killed" in result.stderr
                assert f"stopped the {len(children)} process(es)" in result.stderr, result.stderr
                wait_until(lambda: all_dead(state), 10, what="the orphans ended")
                assert not (run_dir / STATE_FILE).exists()
            else:
                assert "(make up)" in result.stderr, (command, result.stderr)
            assert not any("á" in line or "ñ" in line for line in result.stderr.splitlines())
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
        end_orphans(state)


@needs_envoy
def test_a_new_up_after_a_killed_one_ends_its_orphans_and_starts(tmp_path):
    run_dir = tmp_path / "run"
    first = start_up(run_dir, tmp_path / "first.log")
    killed = read_state(run_dir)
    second = None
    try:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        second = start_up(run_dir, tmp_path / "second.log")
        said = (tmp_path / "second.log").read_text()
        assert f"A previous local mesh did not stop: its runner (pid {first.pid}) was killed" in said
        assert all_dead(killed)
        fresh = running_state(run_dir)
        assert fresh["runner_pid"] == second.pid
        os.killpg(second.pid, signal.SIGINT)  # Ctrl-C: a clean stop, state removed
        assert second.wait(60) == 0
        assert "Stopped: no process left." in (tmp_path / "second.log").read_text()
        assert all_dead(fresh) and not (run_dir / STATE_FILE).exists()
    finally:
        for runner in (first, second):
            if runner is not None and runner.poll() is None:
                os.killpg(runner.pid, signal.SIGKILL)
                runner.wait()
        end_orphans(killed)
        current = read_state(run_dir)
        if current:
            end_orphans(current)
