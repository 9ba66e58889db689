"""Helpers of the reliability tests: the profile (quick or full), bounded load with ids, the results
files, memory from /proc, and meshes on a copy of the manifests for test-only scenarios."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from localmesh.mesh import Mesh
from tests.support import ROOT, scrape

# quick: the default, in `make test` and CI; full: `make reliability` (RELIABILITY_PROFILE=full).
PROFILE = os.environ.get("RELIABILITY_PROFILE", "quick")
if PROFILE not in ("quick", "full"):
    raise ValueError(f"RELIABILITY_PROFILE={PROFILE!r}: expected quick or full")
FULL = PROFILE == "full"


def sized(quick, full):
    """The quick or the full value of a figure, by profile."""
    return full if FULL else quick


# -- load with one id per request ------------------------------------------------------------------


def calculation(request_id: int) -> bytes:
    """sumar id + 0: the answer's resultado, and the results file's line, name the request."""
    return json.dumps({"operacion": "sumar", "numero1": request_id, "numero2": 0}).encode()


@dataclass(frozen=True)
class Result:
    request_id: int
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    seconds: float
    started: float  # monotonic
    overloaded: bool  # x-envoy-overloaded: true (a circuit breaker's 503)
    body: object
    error: str = ""


class _Connection:
    """A keep-alive connection of one client thread, opened again after any failure."""

    def __init__(self, host: str, port: int, timeout: float):
        self.host, self.port, self.timeout = host, port, timeout
        self.connection: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.connection.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
            response = self.connection.getresponse()
            data = response.read()
            if response.will_close:
                self.close()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class Load:
    """Requests from ``concurrency`` threads with ids from ``first_id`` on, in the background.

    Bounded: at most ``count`` requests, none started after ``seconds``; ``stop()``
    ends it early. ``rate`` paces each thread (requests per second).
    """

    def __init__(
        self,
        url: str,
        *,
        count: int = 10**9,
        seconds: float = 600.0,
        concurrency: int = 8,
        rate: float | None = None,
        first_id: int = 1,
        path: str = "/calcular",
        headers: dict | None = None,
        timeout: float = 10.0,
        nice: int | None = None,
    ):
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.count, self.seconds, self.concurrency, self.rate = count, seconds, concurrency, rate
        self.path, self.headers, self.timeout, self.nice = path, headers or {}, timeout, nice
        self.results: list[Result] = []
        self._ids = iter(range(first_id, first_id + count))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(concurrency)]
        self.started = 0.0

    def start(self) -> "Load":
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def _run(self) -> None:
        if self.nice is not None:  # per thread on Linux
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        connection = _Connection(self.host, self.port, self.timeout)
        deadline = self.started + self.seconds
        sent = 0
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                with self._lock:
                    request_id = next(self._ids, None)
                if request_id is None:
                    return
                if self.rate:
                    # Paced: this thread's n-th request leaves n/rate seconds after the start.
                    wait = self.started + sent / self.rate - time.monotonic()
                    if wait > 0 and self._stop.wait(wait):
                        return
                sent += 1
                begun = time.monotonic()
                try:
                    status, headers, data = connection.post(self.path, calculation(request_id), self.headers)
                    error = ""
                except (OSError, http.client.HTTPException) as failure:
                    status, headers, data, error = 0, {}, b"", f"{type(failure).__name__}: {failure}"
                try:
                    body = json.loads(data) if data else None
                except ValueError:
                    body = data
                result = Result(
                    request_id, status, time.monotonic() - begun, begun,
                    headers.get("x-envoy-overloaded") == "true", body, error,
                )
                with self._lock:
                    self.results.append(result)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> list[Result]:
        """Wait for the threads (at most the load's bound plus the request timeout)."""
        limit = timeout if timeout is not None else self.seconds + self.timeout + 5
        end = time.monotonic() + limit
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), f"load still running after {limit:.0f}s"
        return sorted(self.results, key=lambda r: r.started)

    def run(self) -> list[Result]:
        return self.start().wait()

    def wait_for(self, sent: int, timeout: float) -> None:
        """Until ``sent`` requests have answers (a point mid-load), with a deadline."""
        deadline = time.monotonic() + timeout
        while len(self.results) < sent:
            assert time.monotonic() < deadline, f"only {len(self.results)} of {sent} answers in {timeout:.0f}s"
            time.sleep(0.02)


def app_5xx(mesh: Mesh) -> int:
    """5xx answered by the apps themselves, over every replica, from their /metrics."""
    return sum(
        int(value)
        for service in mesh.services.values()
        for (name, labels), value in scrape(service).items()
        if name == "http_server_requests_total" and dict(labels)["status"].startswith("5")
    )


def success_rate(results: list[Result]) -> float:
    return sum(r.status == 200 for r in results) / len(results)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    rank = max(1, -(-round(fraction * len(ordered) * 1e9) // 10**9))
    return ordered[min(rank, len(ordered)) - 1]


# -- the results files -----------------------------------------------------------------------------

LINE = re.compile(rb"^Decimal: (-?\d+), Hexadecimal: (-?0x[0-9a-f]+)$")


@dataclass
class ResultLines:
    counts: Counter  # resultado -> lines
    torn: list[bytes]  # lines that are not the seed's format, or whose hex is not hex(resultado)
    unterminated: list[str]  # files whose last byte is not a newline


def read_results(data_root: Path) -> ResultLines:
    """Every line of every replica's results file under the mesh's data directory."""
    counts, torn, unterminated = Counter(), [], []
    for path in sorted(Path(data_root).glob("*/resultados.txt")):
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            unterminated.append(str(path))
        for line in data.split(b"\n")[:-1]:
            match = LINE.match(line)
            if match is None or hex(int(match.group(1))).encode() != match.group(2):
                torn.append(line)
            else:
                counts[int(match.group(1))] += 1
    return ResultLines(counts, torn, unterminated)


# -- memory ----------------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and every descendant (a gunicorn master and its worker)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


class MemorySampler:
    """RSS of each named process every ``interval`` seconds, in the background, until stopped."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5):
        self.pids, self.interval = pids, interval
        self.samples: dict[str, list[tuple[float, int]]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            now = time.monotonic()
            for name, pid in self.pids.items():
                self.samples[name].append((now, rss_bytes(pid)))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def peak(self, name: str, since: float = 0.0, until: float = float("inf")) -> int:
        return max((rss for at, rss in self.samples[name] if since <= at <= until), default=0)


def renice(pid: int, value: int) -> None:
    """Every thread of a process (nice is per thread on Linux)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.setpriority(os.PRIO_PROCESS, int(task), value)


def mesh_pids(mesh: Mesh) -> dict[str, int]:
    pids = {pod: service.pid for pod, service in mesh.services.items()}
    pids.update({f"envoy {name}": envoy.process.pid for name, envoy in mesh.envoys.items()})
    return pids


MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def memory_limits() -> dict[str, int]:
    """The manifests' memory limit of each Deployment's container, in bytes."""
    limits = {}
    for path in (ROOT / "k8s" / "base").glob("*-deployment.yaml"):
        document = yaml.safe_load(path.read_text())
        (container,) = document["spec"]["template"]["spec"]["containers"]
        value = container["resources"]["limits"]["memory"]
        limits[document["metadata"]["name"]] = int(value[:-2]) * MEMORY_UNITS[value[-2:]]
    return limits


# -- a copy of the manifests, for a test-only scenario ---------------------------------------------


def manifests_copy(destination: Path) -> Path:
    """k8s/base and istio/ under ``destination``: a root whose scenarios a test may add to."""
    shutil.copytree(ROOT / "k8s" / "base", destination / "k8s" / "base")
    shutil.copytree(ROOT / "istio", destination / "istio")
    return destination


def write_scenario(root: Path, name: str, documents: list[dict]) -> str:
    path = root / "istio" / "scenarios" / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return name


def istio_document(name: str) -> dict:
    return yaml.safe_load((ROOT / "istio" / name).read_text())


# -- raw sockets -----------------------------------------------------------------------------------


def raw_exchange(port: int, data: bytes, timeout: float = 5.0, shut_write: bool = False) -> bytes:
    """Send raw bytes to 127.0.0.1:port and read until the peer closes or ``timeout`` passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if shut_write:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
        return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return match is not None and len(body) >= int(match.group(1))


def status_of(response: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", response)
    return int(match.group(1)) if match else None


# -- figures -----------------------------------------------------------------------------------------


def record(figure: str, **values) -> None:
    """Print a figure, and append it to $RELIABILITY_FIGURES (JSON lines) for RELIABILITY.md."""
    line = {"figure": figure, "profile": PROFILE, "date": time.strftime("%Y-%m-%d"), **values}
    print(f"\n[{figure}] " + ", ".join(f"{k}={v}" for k, v in values.items()))
    target = os.environ.get("RELIABILITY_FIGURES")
    if target:
        with open(target, "a") as handle:
            handle.write(json.dumps(line) + "\n")
