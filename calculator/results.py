"""The results file: the seed's ``resultados.txt``, safe under concurrency.

Every line is written with one ``write()`` on a descriptor opened with
``O_APPEND``, under an exclusive ``flock``: the kernel places each append at
the end of the file, and the lock keeps writers of other processes (gunicorn
workers, replicas sharing a volume) from interleaving even on filesystems where
a single append is not atomic. A line is written before the response is sent,
so every 200 a client sees has its line in the file; it survives the process
being killed (it is in the kernel's page cache). ``fsync=True`` also makes it
survive a machine crash, at the cost of a disk flush per request.

Reading the last N lines walks the file backwards in blocks, so
``GET /resultados`` costs the same on a file of any size.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

LINE_FORMAT = "Decimal: {resultado}, Hexadecimal: {resultado_hexa}\n"
_LINE_PATTERN = re.compile(r"^Decimal: (-?\d+), Hexadecimal: (-?0x[0-9a-f]+)$")
_BLOCK_SIZE = 8192


@dataclass(frozen=True)
class ResultEntry:
    resultado: int
    resultado_hexa: str


def format_line(resultado: int, resultado_hexa: str) -> bytes:
    return LINE_FORMAT.format(resultado=resultado, resultado_hexa=resultado_hexa).encode()


def parse_line(line: str) -> ResultEntry | None:
    """The entry a line holds, or None for a line that is not the seed's format."""
    match = _LINE_PATTERN.match(line)
    if match is None:
        return None
    return ResultEntry(int(match.group(1)), match.group(2))


class ResultsFile:
    def __init__(self, path: str | os.PathLike[str], fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        self._fd: int | None = None
        self._open_lock = threading.Lock()

    def _descriptor(self) -> int:
        # Opened once per process and kept: an open() per request would cost
        # more than the arithmetic.
        if self._fd is None:
            with self._open_lock:
                if self._fd is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._fd = os.open(
                        self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o664
                    )
        return self._fd

    def append(self, resultado: int, resultado_hexa: str) -> None:
        data = format_line(resultado, resultado_hexa)
        fd = self._descriptor()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            written = os.write(fd, data)
            if written != len(data):  # pragma: no cover - a full disk, say
                raise OSError(f"escritura incompleta en {self.path}")
            if self.fsync:
                os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def tail(self, limit: int) -> list[ResultEntry]:
        """The last ``limit`` entries, oldest first, reading only the end of the file."""
        if limit <= 0:
            return []
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return []
        with handle:
            lines = _last_lines(handle, limit)
        entries = [parse_line(line.decode("utf-8", "replace")) for line in lines]
        return [entry for entry in entries if entry is not None]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _last_lines(handle, limit: int) -> list[bytes]:
    """The last ``limit`` complete lines of a binary file, oldest first."""
    handle.seek(0, os.SEEK_END)
    position = handle.tell()
    buffer = b""
    # A line still being appended has no newline yet: leave it out.
    while position > 0 and buffer.count(b"\n") <= limit:
        step = min(_BLOCK_SIZE, position)
        position -= step
        handle.seek(position)
        buffer = handle.read(step) + buffer
    if not buffer.endswith(b"\n"):
        buffer = buffer[: buffer.rfind(b"\n") + 1]
    lines = buffer.split(b"\n")[:-1]
    if position > 0:
        lines = lines[1:]  # the first piece may be the end of an earlier line
    return lines[-limit:]
