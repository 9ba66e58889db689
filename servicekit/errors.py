"""Every error as JSON ``{"error": "<Spanish message>"}``: no HTML page, no stack trace."""

from __future__ import annotations

import logging
import socket

from flask import Flask, jsonify, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import ClientDisconnected, HTTPException

from servicekit.messages import HTTP as MESSAGES


class ApiError(Exception):
    """An error answered as-is: status and Spanish message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str | None = None):
    return jsonify(error=message or MESSAGES.get(status, "Error")), status


def init_app(app: Flask) -> None:
    # Flask turns debug mode on from FLASK_DEBUG in the environment: never here, whatever is set.
    app.debug = False
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError):
        return error_response(error.status, error.message)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        response = error.get_response()
        body, status = error_response(error.code or 500)
        # Keep what werkzeug set that a client needs, such as Allow on a 405.
        for name in ("Allow", "Retry-After"):
            if name in response.headers:
                body.headers[name] = response.headers[name]
        return body, status

    @app.errorhandler(ClientDisconnected)
    def _incomplete_body(error: ClientDisconnected):
        # The body stopped short: the client left, or it stalled past REQUEST_BODY_TIMEOUT_SECONDS
        # (servicekit.gunicorn_worker bounds each read).
        timed_out = isinstance(error.__context__, TimeoutError)
        sock = request.environ.get("gunicorn.socket")
        if timed_out and sock is not None:
            # gunicorn would wait up to 5 s more to drain the rest before reusing the connection
            # (it ignores an app's Connection: close): end the reading side, the answer still goes.
            try:
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        return error_response(408 if timed_out else 400)

    @app.errorhandler(ParseException)
    def _malformed_body(error: ParseException):
        # gunicorn parses a chunked body as the app reads it: a bad chunk surfaces here, and it
        # is the client's fault, not ours.
        return error_response(400)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        logging.getLogger(app.name).exception("unhandled error")
        return error_response(500)
