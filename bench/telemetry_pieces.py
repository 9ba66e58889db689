"""``python -m bench.telemetry_pieces``: what each piece of the telemetry costs per request, in-process.

The calculator app is called as a WSGI application, with no server and no
network, so that only the app's own CPU is counted (``time.thread_time``): with
TELEMETRY_ENABLED=false, with everything on, with everything on but one
piece (the spans, the access-log line, the metrics), and with the spans made by
hand as before issue 13 (``bench.handmade_telemetry``). Variants take turns in
rounds; medians are reported. A quiet machine gives steadier numbers, but the
turns make each comparison fair on a busy one too.
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from opentelemetry import trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor

from bench import handmade_telemetry
from calculator.app import create_app
from calculator.config import CalculatorSettings
from servicekit.lifecycle import DrainFlag
from servicekit.telemetry import excluded_urls

BODY = b'{"operacion": "sumar", "numero1": 2, "numero2": 3}'


def environ() -> dict:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/calcular",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(BODY)),
        "HTTP_HOST": "127.0.0.1:8080",
        "HTTP_TRACEPARENT": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "HTTP_X_REQUEST_ID": "bench",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(BODY),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def _start_response(status, headers, exc_info=None):
    if not status.startswith("200"):
        raise RuntimeError(f"the calculator answered {status}")


def cpu_us_per_request(app, requests: int) -> float:
    started = time.thread_time()
    for _ in range(requests):
        body = app(environ(), _start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()
    return (time.thread_time() - started) / requests * 1e6


def variants(data_dir: Path) -> dict:
    """Apps alike but for one piece of telemetry; each its own results file."""

    def app(name: str, enabled: bool):
        settings = CalculatorSettings(results_file=data_dir / f"{name}.txt")
        env = {"TELEMETRY_ENABLED": "true" if enabled else "false"}
        return create_app(settings, environ=env, drain_flag=DrainFlag())

    no_spans = app("no-spans", True)
    # The instrumentation with the non-recording tracer: no span made, no exemplar.
    FlaskInstrumentor.uninstrument_app(no_spans)
    FlaskInstrumentor.instrument_app(
        no_spans, tracer_provider=trace.NoOpTracerProvider(), excluded_urls=excluded_urls(), enable_commenter=False
    )
    no_metrics = app("no-metrics", True)
    telemetry = no_metrics.extensions["telemetry"]
    for metric in (telemetry.http_requests, telemetry.http_duration):
        # labels() returns the child whose inc()/observe() then do nothing.
        metric.labels = lambda *a, **k: _NullMetric()  # noqa: E731
    return {
        "off": (app("off", False), None),
        "on": (app("on", True), None),
        "on, hand-made spans": (handmade_app(data_dir / "handmade.txt"), None),
        "on, no spans": (no_spans, None),
        "on, no access-log line": (app("no-log", True), "quiet"),
        "on, no http metrics": (no_metrics, None),
    }


def handmade_app(results_file: Path):
    """The calculator with the telemetry of before issue 13: spans made by hand (bench.handmade_telemetry)."""
    from unittest import mock

    with mock.patch.multiple(
        "calculator.app", Telemetry=handmade_telemetry.Telemetry, TelemetrySettings=handmade_telemetry.TelemetrySettings
    ):
        return create_app(CalculatorSettings(results_file=results_file), environ={}, drain_flag=DrainFlag())


class _NullMetric:
    def inc(self, *a, **k):
        pass

    def observe(self, *a, **k):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.telemetry_pieces", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="meshcalc-pieces-") as scratch:
        apps = variants(Path(scratch))
        # The JSON log lines go to a file, as a replica's stdout does.
        log = open(Path(scratch) / "log", "w")
        logging.getLogger().handlers[0].stream = log
        access = logging.getLogger("access")
        samples: dict[str, list[float]] = {name: [] for name in apps}
        for name, (app, _) in apps.items():  # warm-up
            cpu_us_per_request(app, 200)
        for _ in range(args.rounds):
            for name, (app, quiet) in apps.items():
                access.setLevel(logging.WARNING if quiet else logging.NOTSET)
                samples[name].append(cpu_us_per_request(app, args.requests))
        access.setLevel(logging.NOTSET)
        log.close()
    off = statistics.median(samples["off"])
    on = statistics.median(samples["on"])
    print(f"CPU per request in the calculator app (µs, median of {args.rounds} rounds of {args.requests}):")
    for name, values in samples.items():
        median = statistics.median(values)
        note = ""
        if name.startswith("on, no"):
            note = f"  (that piece: {on - median:.0f} µs)"
        print(f"  {name:<24} {median:7.1f}   min {min(values):7.1f}  max {max(values):7.1f}{note}")
    print(f"  telemetry in all: {on - off:.0f} µs per request, on/off = {on / off:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
