"""Is the mesh a state file describes still running, and what did a killed one leave behind?

``make up`` records in its state file every process it started, each with its pid and its start
time. A runner killed with SIGKILL cannot remove that file, nor stop its children: each child
(gunicorn, Envoy, Prometheus) runs in a process group of its own, so they live on, orphaned,
holding their ports. A pid alone says nothing once its process is gone: the kernel gives it to the
next process that asks. A pid with the start time the kernel reports for it names one process
only, so nothing here signals a process that is not the one recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

PROC = Path("/proc")


def process_start(pid: int | None) -> str | None:
    """When the process ``pid`` started, as the kernel says; None if there is no such live process."""
    if not pid:
        return None
    if PROC.is_dir():
        try:
            stat = (PROC / str(pid) / "stat").read_text()
        except OSError:
            return None
        # The command name, in parentheses, may hold spaces: the fields after it are the state (Z:
        # a zombie, already dead) and, 20th, the start time in clock ticks since boot.
        fields = stat.rpartition(")")[2].split()
        return None if fields[0] == "Z" else fields[19]
    # No /proc (macOS): ps's start time, to the second, is enough beside the pid.
    try:
        result = subprocess.run(
            ["ps", "-o", "stat=,lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    state, _, started = result.stdout.strip().partition(" ")
    return None if not state or state.startswith("Z") else started.strip()


def alive(pid: int | None, start: str | None) -> bool:
    """The process recorded as (pid, start) still runs: not dead, not a stranger with its pid."""
    return start is not None and process_start(pid) == start


def recorded_processes(state: Mapping) -> dict[str, tuple[int, str | None]]:
    """Every child process a state records, by name: (pid, start time)."""
    found = {}
    for group in ("services", "envoys"):
        for name, info in (state.get(group) or {}).items():
            if info.get("pid"):
                found[name] = (info["pid"], info.get("start"))
    for name in ("prometheus", "alertmanager"):
        process = state.get(name) or {}
        if process.get("pid"):
            found[name] = (process["pid"], process.get("start"))
    return found


def end_orphans(state: Mapping) -> list[str]:
    """SIGKILL the process group of every child a dead runner left, when it is still the one
    recorded; the names of those ended.

    Each child leads its own group (gunicorn's worker is in its master's), so the group is what
    goes. A child recorded without a start time, or whose pid now belongs to another process, is
    left alone: better an orphan than a stranger killed.
    """
    ended = []
    for name, (pid, start) in recorded_processes(state).items():
        if not alive(pid, start):
            continue
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
        ended.append(name)
    return ended
