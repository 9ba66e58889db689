"""The calculator's admin surface: its fault setting at run time, for one replica.

    GET    /fault   the current fault (JSON), and how many requests a hang holds now
    PUT    /fault   replace it: {"errors": 0.5, "status": 503, "delay_seconds": 2, "delay_share": 1,
                    "hang": false}; fields left out take their defaults (no fault)
    DELETE /fault   no fault

Served on ADMIN_BIND only (``servicekit/admin.py``), never on the serving port: no Service,
VirtualService or ingress route leads to it. Operator-facing, so English.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

from calculator.faults import Fault, FaultError, FaultSwitch


def admin_app(faults: FaultSwitch, pod: str) -> Flask:
    app = Flask("calculator-admin")
    app.json.sort_keys = False

    def current():
        return jsonify(pod=pod, fault=faults.current.to_json(), active=faults.current.active, held=faults.held)

    @app.get("/fault")
    def get_fault():
        return current()

    @app.put("/fault")
    def put_fault():
        try:
            faults.set(Fault.from_json(request.get_json(force=True, silent=True)))
        except FaultError as error:
            return jsonify(error=str(error)), 400
        return current()

    @app.delete("/fault")
    def delete_fault():
        faults.set(Fault())
        return current()

    @app.errorhandler(404)
    @app.errorhandler(405)
    def not_here(error):
        return jsonify(error=f"{request.method} {request.path}: the admin surface has GET, PUT and DELETE /fault"), error.code

    return app
