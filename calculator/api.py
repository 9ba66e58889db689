"""The calculator's HTTP layer: decode, call the arithmetic, record, answer."""

from __future__ import annotations

import random
import time

from flask import Blueprint, Response, jsonify, request

from calculator import arithmetic, jsondecode
from calculator.arithmetic import CalculationError
from calculator.config import CalculatorSettings
from calculator.faults import FaultSwitch
from calculator.results import ResultsFile
from servicekit import messages
from servicekit.errors import MESSAGES, ApiError
from servicekit.inbound import read_body
from servicekit.telemetry import Telemetry

VERSION_HEADER = "X-Calculator-Version"
FAULT_HEADER = "X-Calculator-Fault"
MSG_FAULT = messages.INJECTED_FAULT
# A hung request's thread is given back after this long at most, fault or not.
HANG_LIMIT_SECONDS = 600.0


def decode_json_body(max_bytes: int) -> object:
    """The request body as JSON (``calculator.jsondecode``), at most ``max_bytes`` of it."""
    if not request.is_json:
        raise ApiError(415, MESSAGES[415])
    return jsondecode.decode(read_body(max_bytes))


class CalculatorApi:
    def __init__(
        self, settings: CalculatorSettings, results: ResultsFile, telemetry: Telemetry, faults: FaultSwitch
    ):
        self.settings = settings
        self.results = results
        self.faults = faults
        self.operations = (
            arithmetic.OPERATIONS_V2 if settings.version == "v2" else arithmetic.OPERATIONS_V1
        )
        # service_version, not version: a scrape adds the pod's own version label,
        # which would rename ours exported_version.
        self.operations_total = telemetry.counter(
            "calculator_operations",
            "Calculations requested, by operation, outcome and the calculator's version.",
            ["operation", "outcome", "service_version"],
        )

    def blueprint(self) -> Blueprint:
        bp = Blueprint("calculator", __name__)
        bp.add_url_rule("/calcular", view_func=self.calcular, methods=["POST"])
        bp.add_url_rule("/resultados", view_func=self.resultados, methods=["GET"])
        bp.after_app_request(self._add_version_header)
        return bp

    def _add_version_header(self, response: Response) -> Response:
        response.headers[VERSION_HEADER] = self.settings.version
        return response

    def _count(self, operation: object, outcome: str) -> None:
        label = operation if isinstance(operation, str) and operation in self.operations else "unknown"
        self.operations_total.labels(label, outcome, self.settings.version).inc()

    def calcular(self):
        payload = None
        try:
            payload = decode_json_body(self.settings.max_request_bytes)
            calculation = arithmetic.calculate(payload, self.operations)
        except CalculationError as error:
            self._count(_operation_of(payload), "rejected")
            raise ApiError(400, error.message) from None
        except ApiError:
            self._count(None, "rejected")
            raise

        effect = self.faults.current.decide(random.random)
        if effect.hang:
            # Accepted, and no answer while the fault lasts: the caller's timeouts must act.
            self.faults.hang_until_changed(HANG_LIMIT_SECONDS)
        if effect.delay_seconds:
            time.sleep(effect.delay_seconds)
        if effect.status is not None:
            self._count(calculation.operation, "fault")
            response = jsonify(error=MSG_FAULT, fallo_inyectado=True, version=self.settings.version)
            response.status_code = effect.status
            response.headers[FAULT_HEADER] = "failure"
            return response

        # Written before answering: every 200 a client sees has its line.
        self.results.append(calculation.result, calculation.result_hex)
        self._count(calculation.operation, "ok")
        body = {
            "resultado": calculation.result,
            "resultado_hexa": calculation.result_hex,
            "version": self.settings.version,
        }
        if self.settings.version == "v2" and calculation.operation == "dividir":
            body["resultado_exacto"] = float(calculation.exact)
        response = jsonify(body)
        if effect.delay_seconds or effect.hang:
            response.headers[FAULT_HEADER] = "hang" if effect.hang else "delay"
        return response

    def resultados(self):
        limit_max = self.settings.max_results_limit
        raw = request.args.get("limite", "10")
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not 1 <= int(raw) <= limit_max:
            raise ApiError(400, messages.LIMIT_OUT_OF_RANGE.format(limit_max=limit_max))
        entries = self.results.tail(int(raw))
        return jsonify(
            resultados=[
                {"resultado": e.resultado, "resultado_hexa": e.resultado_hexa} for e in entries
            ],
            version=self.settings.version,
        )


def _operation_of(payload: object) -> object:
    return payload.get("operacion") if isinstance(payload, dict) else None
