"""CPU time, memory and CPU affinity of processes, and how busy the whole machine was, from /proc."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct children (gunicorn's worker under its master)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    pids, pending = [], [pid]
    while pending:
        current = pending.pop()
        pids.append(current)
        pending += children(current)
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of these processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def exec_seconds(pids: list[int]) -> float:
    """CPU time of these processes' live threads to the nanosecond (schedstat's sum_exec_runtime).

    ``cpu_seconds`` counts clock ticks (10 ms here): too coarse to tell apart
    two proxies a few percent apart in runs of a few seconds. Threads that
    ended are not counted: for long-lived threads only (an Envoy's).
    """
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile, or a kernel without schedstat
    return total / 1e9


def run_queue_seconds(pids: list[int]) -> float:
    """Time these processes' threads spent runnable but waiting for a CPU (schedstat's run_delay).

    On a machine where other programs compete for the cores, this is where
    latency goes that no process of the path spent working.
    """
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                total += int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile, or a kernel without schedstat
    return total / 1e9


@dataclass(frozen=True)
class Memory:
    rss_mb: float  # what ps and top show: private plus file-backed pages mapped now
    anon_mb: float  # private memory: heap, stacks, stats
    file_mb: float  # pages of mapped files, mostly the executable's code, shared by every process mapping it
    pss_mb: float  # shared pages divided among the processes that map them


def memory(pid: int) -> Memory:
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()
    kb = lambda key: int(status.get(key, "0 kB").split()[0])  # noqa: E731
    pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return Memory(kb("VmRSS") / 1024, kb("RssAnon") / 1024, kb("RssFile") / 1024, pss / 1024)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine since boot; steal counts as busy (taken from us)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy / CLOCK_TICKS, (busy + idle + iowait) / CLOCK_TICKS


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def set_affinity(pids: list[int], cpus: set[int]) -> None:
    """Every thread of these processes on ``cpus``; threads made later inherit it."""
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                os.sched_setaffinity(int(task.name), cpus)
            except OSError:
                pass  # a thread that ended meanwhile
