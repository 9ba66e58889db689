"""hey's command line and output, and the load's statistics: pure parts of localmesh.load and localmesh.observe."""

from __future__ import annotations

import pytest

from localmesh.load import LoadSpec, hey_command, parse_hey_csv, percentile
from localmesh.observe import binomial_interval, read_access_log, wilson_interval


def test_hey_command_line():
    spec = LoadSpec(96, concurrency=12, rate=2.5, headers={"x-canary": "always"})
    assert hey_command("http://127.0.0.1:8080/", spec) == [
        "hey", "-n", "96", "-c", "12", "-q", "2.5", "-t", "10", "-m", "POST", "-T", "application/json",
        "-d", '{"operacion":"sumar","numero1":2,"numero2":3}', "-H", "x-canary: always",
        "-o", "csv", "http://127.0.0.1:8080/calcular",
    ]


def test_load_spec_refuses_what_hey_would_silently_change():
    with pytest.raises(ValueError, match="multiple"):
        LoadSpec(100, concurrency=8)  # hey would send 96
    with pytest.raises(ValueError):
        LoadSpec(4, concurrency=8)


def test_hey_csv_and_percentiles():
    text = (
        "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset\n"
        "0.0521,0.0006,0.0000,0.0007,0.0507,0.0002,200,0.0010\n"
        "3.1000,0.0009,0.0000,0.0007,0.0573,0.0010,504,0.0005\n"
    )
    samples = parse_hey_csv(text)
    assert [(s.seconds, s.status) for s in samples] == [(0.0521, 200), (3.1, 504)]
    assert parse_hey_csv("") == []
    with pytest.raises(ValueError):
        parse_hey_csv("Summary:\n  Total: 1 secs\n")
    assert percentile(list(range(1, 101)), 0.99) == 99
    assert percentile(list(range(1, 101)), 0.5) == 50
    assert percentile([], 0.5) is None


def test_intervals():
    low, high = binomial_interval(0.1, 1000)
    assert (round(low), round(high)) == (69, 131)
    low, high = wilson_interval(100, 1000)
    assert low < 0.1 < high and high - low < 0.07
    low, high = wilson_interval(10, 100)
    assert high - low > 0.15  # a hundred requests cannot tell 10% from 5% or 20%


def test_access_log_reader_leaves_a_half_written_line(tmp_path):
    log = tmp_path / "ingress-access.log"
    log.write_bytes(b'{"response_code":200}\n{"response_co')
    entries, offset = read_access_log(log)
    assert entries == [{"response_code": 200}] and offset == 22
    with log.open("ab") as handle:
        handle.write(b'de":503}\n')
    assert read_access_log(log, offset) == ([{"response_code": 503}], len(log.read_bytes()))
