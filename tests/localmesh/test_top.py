"""`python -m localmesh top` against a real local mesh (gunicorn replicas, Envoys, and Debian's
Prometheus when installed), with a little traffic through the ingress: each workload shows a rate.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest

from localmesh.processes import free_port, wait_until
from localmesh.prometheus import prometheus_binary, query_vector
from tests.localmesh.test_topview import cells, column
from tests.support import ROOT, post_json, running_mesh
from tests.tools import APT, needs

WORKLOADS = [("ingress", "-"), ("gateway", "v1"), ("calculator", "v1"), ("calculator", "v2")]
NO_PROMETHEUS = "No Prometheus in this mesh"


def top(run_dir, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "localmesh", "top", *arguments],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "LOCALMESH_RUN_DIR": str(run_dir)},
    )


@contextmanager
def traffic(mesh):
    """About 20 requests a second through the ingress, one in four to v2 (x-canary), until the block ends."""
    stop = threading.Event()

    def send():
        for n in range(4000):  # bounded
            if stop.wait(0.05):
                return
            headers = {"x-canary": "always"} if n % 4 == 0 else None
            post_json(f"{mesh.ingress_url}/calcular", {"operacion": "sumar", "numero1": 2, "numero2": 3}, headers)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        yield
    finally:
        stop.set()
        sender.join(30)


def rates(frame: str) -> dict[tuple[str, str], float]:
    return {workload: float(column(cells(frame, *workload), "RPS")) for workload in WORKLOADS}


def frame_with_traffic(run_dir) -> str:
    """A frame in which every workload has had a request: v2 gets one in four, so a second may miss it."""
    frames = []

    def every_workload_busy():
        result = top(run_dir, "--once")
        assert result.returncode == 0, result.stdout + result.stderr
        frames.append(result.stdout)
        return all(rate > 0 for rate in rates(result.stdout).values())

    try:
        wait_until(every_workload_busy, 60, interval=0.1, what="a frame with a request to every workload")
    except TimeoutError:
        pytest.fail("no frame with every workload busy; the last:\n" + frames[-1])
    return frames[-1]


@pytest.mark.processes
def test_without_prometheus_top_reads_the_envoys_and_the_replicas(tmp_path):
    with running_mesh(tmp_path / "run") as mesh, traffic(mesh):
        frame = frame_with_traffic(mesh.options.run_dir)
        assert NO_PROMETHEUS in frame and "no p50/p99 and no SLO burn rates" in frame
        for workload in WORKLOADS:
            row = cells(frame, *workload)
            assert column(row, "SUCCESS") == "100.0%", frame
            assert column(row, "P50") == "-"
        assert column(cells(frame, "calculator", "v1"), "PODS") == "2/2"
        float(column(cells(frame, "calculator", "v1"), "RETRIES/S"))  # counted: a number, not "-"
        assert "SLOs (Prometheus" not in frame
        assert_ctrl_c_ends_the_live_view(mesh.options.run_dir)


def assert_ctrl_c_ends_the_live_view(run_dir) -> None:
    """On a terminal (a pty) the live view draws frames until Ctrl-C (SIGINT), then exits 0."""
    main, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "localmesh", "top"],
        stdin=terminal, stdout=terminal, stderr=terminal, cwd=ROOT,
        env={**os.environ, "LOCALMESH_RUN_DIR": str(run_dir), "COLUMNS": "150", "LINES": "40", "TERM": "xterm"},
    )
    os.close(terminal)
    shown = b""
    try:
        deadline = time.monotonic() + 30
        # Two frames drawn: the live loop runs (the first is drawn before it).
        while shown.count(b"meshcalc top") < 2 and time.monotonic() < deadline and process.poll() is None:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                shown += os.read(main, 65536)
        assert shown.count(b"meshcalc top") >= 2, shown.decode(errors="replace")
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        os.close(main)


@pytest.mark.processes
@needs("prometheus", prometheus_binary(), APT.format("prometheus"))
def test_with_prometheus_top_adds_percentiles_and_the_slos(tmp_path):
    with running_mesh(tmp_path / "run", prometheus_port=free_port(), scrape_interval="1s") as mesh, traffic(mesh):
        # The rules have evaluated over the ingress's requests, and the apps' histograms have a rate.
        wait_until(
            lambda: query_vector(mesh.prometheus.url, 'slo:burn_rate:ratio_rate5m{slo="calcular-availability"}')
            and query_vector(mesh.prometheus.url, 'rate(http_server_request_duration_seconds_count{app="calculator", version="v2"}[30s]) > 0'),
            60, interval=0.5, what="the SLO series and the replicas' latency in Prometheus",
        )
        frame = frame_with_traffic(mesh.options.run_dir)
        assert NO_PROMETHEUS not in frame
        for workload in (("gateway", "v1"), ("calculator", "v1"), ("calculator", "v2")):
            assert column(cells(frame, *workload), "P50").endswith(" ms"), frame
        availability = cells(frame, "calcular-availability", "100.0%")
        assert availability[2] == "0.0x", frame  # no 5xx: no budget burnt over 5m
        assert availability[-1] == "none"


def test_top_says_the_mesh_is_not_running_and_exits_1(tmp_path):
    result = top(tmp_path, "--once")
    assert result.returncode == 1
    assert result.stderr.strip() == "The local mesh is not running (make up)."
    assert result.stdout == ""
