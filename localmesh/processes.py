"""Real gunicorn processes on loopback: start, wait until ready, stop, restart.

The local runner and the tests use this same code, so what the tests start is
what a newcomer runs.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

GUNICORN_CONFIG = "python:servicekit.gunicorn_conf"
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the kernel's choice of an ephemeral one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def free_ports(count: int, exclude: Iterable[int] = (), host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports nobody listens on now, none of ``exclude``.

    Each probe stays bound until all are drawn: one probe closed before the
    next is drawn may be handed out again (a plan of 14 ports drawn one by one
    held a duplicate about once in 150 draws here).
    """
    excluded = set(exclude)
    probes: list[socket.socket] = []
    ports: list[int] = []
    try:
        # Bounded: a kernel handing out an excluded port again and again ends the loop.
        for _ in range(count + len(excluded) + 16):
            if len(ports) == count:
                break
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probes.append(probe)
            probe.bind((host, 0))
            port = probe.getsockname()[1]
            if port not in excluded:
                ports.append(port)
    finally:
        for probe in probes:
            probe.close()
    if len(ports) != count:
        raise RuntimeError(f"could not find {count} free ports on {host}")
    return ports


def http_status(host: str, port: int, path: str, timeout: float = 1.0) -> int | None:
    """The status of ``GET path``, or None when nothing answers."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def wait_until(condition, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll ``condition`` until it returns a true value, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not true after {timeout:.1f}s")
        time.sleep(interval)


@dataclass
class ServiceSpec:
    name: str
    app: str  # a gunicorn app spec, e.g. "calculator.app:create_app()"
    port: int
    env: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    config: str | None = GUNICORN_CONFIG  # gunicorn's -c; None for gunicorn's defaults

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class ManagedProcess:
    """A child process with its own log file and process group.

    Its own group: Ctrl-C in the runner's terminal reaches the runner only,
    which then stops each child in order. Subclasses say what to run and when
    it is ready; starting, stopping and reading the log are the same for all.
    """

    def __init__(self, name: str, log_path: Path):
        self.name = name
        self.log_path = Path(log_path)
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _launch(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _wait_for(self, ready, timeout: float, what: str) -> None:
        """Wait until ``ready()``, failing at once with the log's tail if the process exits."""

        def ready_or_dead():
            if not self.running():
                raise RuntimeError(f"{self.name} exited; see {self.log_path}:\n{self.log_tail()}")
            return ready()

        wait_until(ready_or_dead, timeout, what=what)

    def signal(self, signum: int) -> None:
        if self.running():
            self.process.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL past ``timeout``."""
        if self.process is None:
            return None
        if self.running():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        if self.running():
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


class ServiceProcess(ManagedProcess):
    """One gunicorn master (and its worker) for one replica."""

    def __init__(self, spec: ServiceSpec, log_dir: Path):
        super().__init__(spec.name, Path(log_dir) / f"{spec.name}.log")
        self.spec = spec
        self.restarts = 0

    @property
    def url(self) -> str:
        return self.spec.url

    def command(self) -> list[str]:
        bind = f"{self.spec.host}:{self.spec.port}"
        config = ["-c", self.spec.config] if self.spec.config else []
        return [sys.executable, "-m", "gunicorn", *config, "--bind", bind, self.spec.app]

    def start(self) -> None:
        # The caller's proxy settings are for the caller: a replica gets a proxy
        # only when its spec says so (its sidecar).
        inherited = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARIABLES}
        self._launch(self.command(), {**inherited, "PYTHONUNBUFFERED": "1", **self.spec.env})

    def ready(self) -> bool:
        return http_status(self.spec.host, self.spec.port, "/readyz") == 200

    def wait_ready(self, timeout: float = 20.0) -> None:
        self._wait_for(self.ready, timeout, f"{self.spec.name} ready on {self.url}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (gunicorn's graceful path: drain, then stop), then SIGKILL to the group."""
        returncode = super().stop(timeout)
        if self.process is not None:
            self._kill_group()
        return returncode

    def kill(self) -> None:
        super().kill()
        self._kill_group()

    def _kill_group(self) -> None:
        # A worker whose master died with SIGKILL is left behind: end the group.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()
