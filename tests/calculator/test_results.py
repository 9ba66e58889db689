"""The results file: the seed's line format, safe appends, and a cheap tail."""

import multiprocessing
import os
import threading

import pytest

from calculator import results
from calculator.results import ResultEntry, ResultsFile, parse_line

LINE = "Decimal: {0}, Hexadecimal: {1}"


def test_lines_keep_the_seed_format(tmp_path):
    store = ResultsFile(tmp_path / "data" / "resultados.txt")
    store.append(3, "0x3")
    store.append(-7, "-0x7")
    assert (tmp_path / "data" / "resultados.txt").read_text() == (
        "Decimal: 3, Hexadecimal: 0x3\nDecimal: -7, Hexadecimal: -0x7\n"
    )


def test_tail_returns_the_last_entries_oldest_first(tmp_path):
    store = ResultsFile(tmp_path / "r.txt")
    for n in range(50):
        store.append(n, hex(n))
    assert store.tail(3) == [ResultEntry(47, "0x2f"), ResultEntry(48, "0x30"), ResultEntry(49, "0x31")]
    assert len(store.tail(1000)) == 50
    assert store.tail(0) == []


def test_tail_of_a_missing_file_is_empty(tmp_path):
    assert ResultsFile(tmp_path / "nada.txt").tail(5) == []


def test_tail_skips_a_line_still_being_written_and_foreign_lines(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("basura\n" + LINE.format(1, "0x1") + "\n" + "Decimal: 2, Hexa")
    assert ResultsFile(path).tail(5) == [ResultEntry(1, "0x1")]


def test_tail_reads_only_the_end_of_a_large_file(tmp_path, monkeypatch):
    path = tmp_path / "r.txt"
    line = LINE.format(123456789, hex(123456789)) + "\n"
    path.write_text(line * 200_000)  # about 8 MB
    reads = []
    real_open = open

    class CountingFile:
        def __init__(self, handle):
            self.handle = handle

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def read(self, size=-1):
            data = self.handle.read(size)
            reads.append(len(data))
            return data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(results, "open", lambda *a, **k: CountingFile(real_open(*a, **k)), raising=False)
    assert len(ResultsFile(path).tail(10)) == 10
    assert sum(reads) < 64 * 1024


@pytest.mark.parametrize(
    "line, entry",
    [
        ("Decimal: 0, Hexadecimal: 0x0", ResultEntry(0, "0x0")),
        ("Decimal: -255, Hexadecimal: -0xff", ResultEntry(-255, "-0xff")),
        ("Decimal: x, Hexadecimal: 0x0", None),
        ("Decimal: 1, Hexadecimal: 0x1 extra", None),
    ],
)
def test_parse_line(line, entry):
    assert parse_line(line) == entry


def _append_many(path, start, count):
    store = ResultsFile(path)
    for n in range(start, start + count):
        store.append(n, hex(n))


def _assert_complete(path, expected_numbers):
    lines = path.read_text().splitlines()
    entries = [parse_line(line) for line in lines]
    assert None not in entries, "a torn or interleaved line"
    assert sorted(e.resultado for e in entries) == sorted(expected_numbers)
    assert all(e.resultado_hexa == hex(e.resultado) for e in entries)


def test_concurrent_threads_never_tear_or_lose_a_line(tmp_path):
    path = tmp_path / "r.txt"
    store = ResultsFile(path)

    def worker(start):
        for n in range(start, start + 500):
            store.append(n, hex(n))

    threads = [threading.Thread(target=worker, args=(i * 1000,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _assert_complete(path, [i * 1000 + n for i in range(8) for n in range(500)])


def test_concurrent_processes_never_tear_or_lose_a_line(tmp_path):
    path = tmp_path / "r.txt"
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_append_many, args=(path, i * 10_000, 1000)) for i in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    _assert_complete(path, [i * 10_000 + n for i in range(4) for n in range(1000)])


def test_fsync_mode_writes_the_same_lines(tmp_path):
    store = ResultsFile(tmp_path / "r.txt", fsync=True)
    store.append(1, "0x1")
    assert store.tail(1) == [ResultEntry(1, "0x1")]
    assert os.path.getsize(tmp_path / "r.txt") == len("Decimal: 1, Hexadecimal: 0x1\n")
