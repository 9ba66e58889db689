"""``GET /openapi.json``: the HTTP API of both services, one static document (``openapi.json``
beside this file), each service serving the paths it has (``x-services``) and its own server."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

from flask import Flask, jsonify

DOCUMENT = Path(__file__).with_name("openapi.json")


@cache
def _full() -> dict:
    return json.loads(DOCUMENT.read_text(encoding="utf-8"))


def document_for(service: str, operations: list[str] | None = None) -> dict:
    """The document with ``service``'s paths and server only, and ``operations`` (the version's)
    if given. Pure but for reading the file once."""
    full = copy.deepcopy(_full())
    if operations is not None:
        full["components"]["schemas"]["Calculo"]["properties"]["operacion"]["enum"] = list(operations)
    full["paths"] = {
        path: {key: value for key, value in item.items() if key != "x-services"}
        for path, item in full["paths"].items()
        if service in item["x-services"]
    }
    full["servers"] = [server for server in full["servers"] if server["description"] == service]
    full["info"]["title"] = f"meshcalc: {service}"
    return full


def init_app(app: Flask, service: str, operations: list[str] | None = None) -> None:
    document = document_for(service, operations)
    app.add_url_rule("/openapi.json", "openapi", lambda: jsonify(document), methods=["GET"])
