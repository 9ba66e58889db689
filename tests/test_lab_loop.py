"""The README's loop, as a newcomer runs it: `make up` in one shell, the levers in another.

Real processes through `make` (the venv the suite runs in, ``make -s``): the mesh on free ports and
its own run directory, `make fault`, `make status`, `make scenario` (no-retries then retries: the
failures reach the clients, then they do not, with no replica restarted), `make load`, `make
restart`, Ctrl-C on a load and on the mesh. What each step prints is checked, and that none of it
is Spanish (the API is; what an operator reads is not).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from localmesh.mesh import read_state
from localmesh.processes import free_port, wait_until
from tests.support import ROOT
from tests.tools import needs_envoy

pytestmark = [pytest.mark.processes, needs_envoy]

# Words of the seed's Spanish that an English operator message would never hold; and Spanish letters.
SPANISH = re.compile(
    r"[áéíóúñ¿¡]|\b(escenario|réplica|iniciando|deteniendo|detenido|listo|malla|servicio|activo|reinicio|"
    r"carga|solicitudes|respuesta|ninguno|fallo|error interno)\b",
    re.IGNORECASE,
)
TOTAL = re.compile(r"^total\s+\d+ s\s+(\d+) sent\s+(.*)$", re.MULTILINE)


def spanish_lines(text: str) -> list[str]:
    # The example requests `make up` prints are the API's own words (the seed's contract).
    return [line for line in text.splitlines() if SPANISH.search(line) and "curl " not in line]


def test_the_spanish_detector_catches_a_spanish_message():
    assert spanish_lines("Escenario activo: base\nActive scenario: base") == ["Escenario activo: base"]
    assert spanish_lines("réplicas listas") and not spanish_lines("curl -d '{\"operación\": 1}'")


def answered(text: str) -> tuple[int, int]:
    """(sent, 503s) from the total line of `make load`: "total 5 s  200 sent  200 v1 150 · 503 v1 40 ..."."""
    match = TOTAL.search(text)
    assert match, text
    failures = sum(int(n) for status, n in re.findall(r"\b(\d{3}|no answer) \S+ (\d+)", match.group(2)) if status == "503")
    return int(match.group(1)), failures


def test_answered_reads_the_total_line():
    assert answered("  1 s  10 sent  200 v1 10\ntotal 5 s  200 sent  200 v1 150 · 503 v1 40 · 200 v2 10") == (200, 40)


class Shell:
    """Another terminal: `make -s TARGET VAR=...` with the mesh's environment, its output kept for the scan."""

    def __init__(self, env: dict[str, str]):
        self.env, self.printed = env, []

    def make(self, *words: str, timeout: float = 180) -> str:
        done = subprocess.run(["make", "-s", *words], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        self.printed.append(done.stdout + done.stderr)
        assert done.returncode == 0, f"make {' '.join(words)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def replicas(self) -> dict[str, str]:
        """Each replica's line of `make status`."""
        lines = self.make("status").splitlines()
        return {line.split()[0]: line for line in lines if " restarts: " in line}


class Running:
    """A long-running make target in its own process group, its output read as it comes."""

    def __init__(self, words: list[str], env: dict[str, str]):
        self.output: list[str] = []
        self.process = subprocess.Popen(["make", "-s", *words], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)

    @property
    def text(self) -> str:
        return "".join(self.output)

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, as a terminal sends it: SIGINT to the whole foreground group."""
        os.killpg(self.process.pid, signal.SIGINT)
        code = self.process.wait(timeout)
        self.reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def test_the_readme_loop(tmp_path):
    run_dir = tmp_path / "run"
    env = {
        **os.environ,
        "INGRESS_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(free_port()),
        "ALERTMANAGER_PORT": str(free_port()),
        "LOCALMESH_RUN_DIR": str(run_dir),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    up = Running(["up"], env)
    shell = Shell(env)
    try:
        wait_until(lambda: "Ctrl-C to stop." in up.text or up.process.poll() is not None, 180, what="make up ready")
        assert up.process.poll() is None, up.text
        assert "Active scenario: base" in up.text and "make scenario NAME=no-retries" in up.text
        state = read_state(run_dir)

        # A lever by hand, seen in make status, then healed.
        assert shell.make("fault", "POD=calculator-v1-0", "ERRORS=0.5") == "calculator-v1-0: fault 50% answered 503\n"
        assert "fault: 50% answered 503" in shell.replicas()["calculator-v1-0"]
        assert shell.make("fault-clear").splitlines() == [
            "calculator-v1-0: fault none", "calculator-v1-1: fault none", "calculator-v2-0: fault none"
        ]

        # The retries pair, by name, on the running mesh.
        applied = shell.make("scenario", "NAME=no-retries")
        assert applied.startswith("Active scenario: no-retries: ") and "faults: calculator-v1-0: 50% answered 503" in applied
        assert "no replica restarted" in applied
        sent, failed_without = answered(shell.make("load", "RATE=50", "DURATION=4s"))
        applied = shell.make("scenario", "NAME=retries")
        assert applied.startswith("Active scenario: retries: ")
        sent_with, failed_with = answered(shell.make("load", "RATE=50", "DURATION=4s"))
        print(f"no-retries: {failed_without} of {sent} answered 503; retries: {failed_with} of {sent_with}")
        # calculator-v1-0 gets ~45% of the traffic and fails half of it: ~22% reach clients without retries.
        assert failed_without >= 0.10 * sent, (failed_without, sent)
        assert failed_with <= 0.01 * sent_with, (failed_with, sent_with)
        replicas = shell.replicas()
        assert len(replicas) == 5 and all(" restarts: 0 " in line for line in replicas.values()), replicas
        assert "Active scenario: retries" in shell.make("status")

        # Back to the base: policy and faults.
        assert shell.make("scenario", "NAME=base").startswith("Active scenario: base: ")
        assert all("fault: none" in line for pod, line in shell.replicas().items() if pod.startswith("calculator"))

        # A rolling restart, as kubectl rollout restart: every replica replaced, one at a time.
        assert "Rolling restart done" in shell.make("restart", timeout=600)
        assert all(" restarts: 0 " in line for line in shell.replicas().values())
        assert all(read_state(run_dir)["services"][pod]["pid"] != state["services"][pod]["pid"] for pod in state["services"])

        # A load left running, stopped with Ctrl-C.
        load = Running(["load", "DURATION=60s"], env)
        try:
            wait_until(lambda: load.text.count(" sent ") >= 3, 30, what="three lines of make load")
            load.interrupt()
        finally:
            load.kill()
        shell.printed.append(load.text)
        assert "stopping (Ctrl-C)" in load.text and "\ntotal " in load.text, load.text
        assert answered(load.text)[1] == 0, load.text
    finally:
        last = read_state(run_dir) or {"services": {}, "envoys": {}}
        pids = [info["pid"] for info in last["services"].values()] + [e["pid"] for e in last["envoys"].values()]
        code = up.interrupt(120) if up.process.poll() is None else up.process.returncode
        up.kill()
    # make itself takes the terminal's SIGINT too and dies of it once its recipe has exited.
    assert code in (0, -signal.SIGINT) and "Stopped: no process left." in up.text, up.text
    assert read_state(run_dir) is None
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(), pid
    everything = up.text + "".join(shell.printed)
    assert spanish_lines(everything) == [], spanish_lines(everything)
