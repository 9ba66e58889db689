"""The gateway's application factory: ``gunicorn 'gateway.app:create_app()'``."""

from __future__ import annotations

import os
from typing import Mapping

from flask import Flask

from gateway.api import GatewayApi
from gateway.config import GatewaySettings
from gateway.upstream import CalculatorClient
from servicekit import errors, inbound, lifecycle, openapi
from servicekit.lifecycle import DrainFlag
from servicekit.telemetry import Telemetry, TelemetrySettings

SERVICE_NAME = "gateway"
SERVICE_VERSION = "v1"


def create_app(
    settings: GatewaySettings | None = None,
    environ: Mapping[str, str] | None = None,
    drain_flag: DrainFlag | None = None,
) -> Flask:
    environ = os.environ if environ is None else environ
    settings = settings or GatewaySettings.from_env(environ)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False

    errors.init_app(app)
    lifecycle.init_app(app, drain_flag)
    openapi.init_app(app, SERVICE_NAME)
    telemetry = Telemetry(TelemetrySettings.from_env(environ, SERVICE_NAME, SERVICE_VERSION))
    telemetry.init_app(app)
    inbound.init_app(app)  # after telemetry: its refusals are counted
    telemetry.trace_http_client()
    client = CalculatorClient(
        settings.calculator_url, settings.calculator_timeout_seconds, settings.upstream_pool_size
    )
    app.register_blueprint(GatewayApi(settings, client, telemetry).blueprint())
    return app
