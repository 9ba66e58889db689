"""Liveness, readiness and draining.

Kubernetes stops a pod by sending SIGTERM while the endpoint may still be in
the load balancers' lists. So on SIGTERM the process first turns ``/readyz``
to 503 and keeps serving for ``SHUTDOWN_DRAIN_SECONDS``, then gunicorn stops
accepting and finishes the requests in flight (``graceful_timeout``).

The draining flag lives in memory shared across fork: gunicorn's master sets
it (see ``servicekit/gunicorn_conf.py``), every worker reads it.
"""

from __future__ import annotations

import multiprocessing
import threading

from flask import Blueprint, current_app, jsonify


class DrainFlag:
    """A flag set once, readable by processes forked after it was made."""

    def __init__(self) -> None:
        self._value = multiprocessing.Value("b", 0, lock=False)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)


_process_flag: DrainFlag | None = None
_flag_lock = threading.Lock()


def process_drain_flag() -> DrainFlag:
    """This process's flag; made in gunicorn's master before fork, so shared."""
    global _process_flag
    with _flag_lock:
        if _process_flag is None:
            _process_flag = DrainFlag()
        return _process_flag


probes = Blueprint("probes", __name__)


@probes.get("/healthz")
def healthz():
    return jsonify(estado="ok")


@probes.get("/readyz")
def readyz():
    if current_app.extensions["drain_flag"].is_set():
        return jsonify(estado="drenando"), 503
    return jsonify(estado="listo")


def init_app(app, drain_flag: DrainFlag | None = None) -> None:
    app.extensions["drain_flag"] = drain_flag or process_drain_flag()
    app.register_blueprint(probes)
