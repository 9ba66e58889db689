"""Every error as JSON ``{"error": "<Spanish message>"}``: no HTML page, no stack trace."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

MESSAGES = {
    400: "Solicitud no válida",
    404: "Ruta no encontrada",
    405: "Método no permitido",
    413: "El cuerpo de la solicitud es demasiado grande",
    415: "El cuerpo debe enviarse como JSON (Content-Type: application/json)",
    431: "Las cabeceras de la solicitud son demasiado grandes",
    500: "Error interno del servidor",
}


class ApiError(Exception):
    """An error answered as-is: status and Spanish message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str | None = None):
    return jsonify(error=message or MESSAGES.get(status, "Error")), status


def init_app(app: Flask) -> None:
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

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        logging.getLogger(app.name).exception("unhandled error")
        return error_response(500)
