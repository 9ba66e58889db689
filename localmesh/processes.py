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


class ServiceProcess:
    """One gunicorn master (and its worker) for one replica."""

    def __init__(self, spec: ServiceSpec, log_dir: Path):
        self.spec = spec
        self.log_path = Path(log_dir) / f"{spec.name}.log"
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return self.spec.url

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        bind = f"{self.spec.host}:{self.spec.port}"
        config = ["-c", self.spec.config] if self.spec.config else []
        return [sys.executable, "-m", "gunicorn", *config, "--bind", bind, self.spec.app]

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # The caller's proxy settings are for the caller: a replica gets a proxy
        # only when its spec says so (its sidecar).
        inherited = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARIABLES}
        environment = {**inherited, "PYTHONUNBUFFERED": "1", **self.spec.env}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: Ctrl-C in the runner's terminal reaches
                # the runner only, which then stops each service in order.
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        return http_status(self.spec.host, self.spec.port, "/readyz") == 200

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready_or_dead():
            if not self.running():
                raise RuntimeError(f"{self.spec.name} exited; see {self.log_path}:\n{self.log_tail()}")
            return self.ready()

        wait_until(ready_or_dead, timeout, what=f"{self.spec.name} ready on {self.url}")

    def signal(self, signum: int) -> None:
        if self.running():
            self.process.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the graceful path), then SIGKILL to the group past ``timeout``."""
        if self.process is None:
            return None
        if self.running():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._kill_group()
        return self.process.returncode

    def kill(self) -> None:
        if self.running():
            self.process.kill()
            self.process.wait()
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

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""
