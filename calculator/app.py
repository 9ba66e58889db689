"""The calculator's application factory: ``gunicorn 'calculator.app:create_app()'``."""

from __future__ import annotations

import os
import socket
from typing import Mapping

from flask import Flask

from calculator.admin import admin_app
from calculator.api import CalculatorApi
from calculator.config import CalculatorSettings
from calculator.faults import FaultSwitch
from calculator.results import ResultsFile
from servicekit import admin, errors, inbound, lifecycle, openapi
from servicekit.lifecycle import DrainFlag
from servicekit.telemetry import Telemetry, TelemetrySettings

SERVICE_NAME = "calculator"


def create_app(
    settings: CalculatorSettings | None = None,
    environ: Mapping[str, str] | None = None,
    drain_flag: DrainFlag | None = None,
) -> Flask:
    environ = os.environ if environ is None else environ
    settings = settings or CalculatorSettings.from_env(environ)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False
    app.extensions["calculator_settings"] = settings

    errors.init_app(app)
    lifecycle.init_app(app, drain_flag)
    telemetry = Telemetry(TelemetrySettings.from_env(environ, SERVICE_NAME, settings.version))
    telemetry.init_app(app)
    inbound.init_app(app)  # after telemetry: its refusals are counted
    results = ResultsFile(settings.results_file, fsync=settings.results_fsync)
    faults = FaultSwitch(settings.initial_fault())
    api = CalculatorApi(settings, results, telemetry, faults)
    if settings.admin_bind:
        # Started in the worker by gunicorn's post_worker_init (servicekit/gunicorn_conf.py).
        pod = environ.get("HOSTNAME") or socket.gethostname()
        app.extensions[admin.EXTENSION] = admin.AdminSurface(settings.admin_bind, admin_app(faults, pod))
    app.register_blueprint(api.blueprint())
    openapi.init_app(app, SERVICE_NAME, list(api.operations))
    return app
