"""The calculator's arithmetic: validation and exact computation, with no I/O.

The seed computed with Python floats and then truncated with ``int()``. We keep
its contract (the result truncated toward zero, ``hex()`` of it) but compute
exactly with ``fractions.Fraction``, so ``9007199254740993 + 0`` is not rounded
and ``-7 / 2`` is ``-3`` as in the seed. Operands and results are bounded to the
signed 64-bit range, so every answer fits the clients that read it.

Errors are ``CalculationError`` with the Spanish message the API returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Mapping

from servicekit import messages

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# The texts live in servicekit.messages (the seed's kept word for word: clients may match on them).
MSG_INVALID_OPERATION = messages.INVALID_OPERATION
MSG_NOT_A_NUMBER = messages.NOT_A_NUMBER
MSG_DIVISION_BY_ZERO = messages.DIVISION_BY_ZERO
MSG_BODY_NOT_OBJECT = messages.BODY_NOT_OBJECT
MSG_OPERAND_OUT_OF_RANGE = messages.OPERANDS_OUT_OF_RANGE.format(low=INT64_MIN, high=INT64_MAX)
MSG_RESULT_OUT_OF_RANGE = messages.RESULT_OUT_OF_RANGE.format(low=INT64_MIN, high=INT64_MAX)


def missing_field_message(field: str) -> str:
    return messages.MISSING_FIELD.format(field=field)


class CalculationError(ValueError):
    """A request the calculator refuses; ``message`` is what the client sees."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


Number = int | float


@dataclass(frozen=True)
class Calculation:
    operation: str
    operand1: Number
    operand2: Number
    exact: Fraction

    @property
    def result(self) -> int:
        """The exact result truncated toward zero, as the seed's ``int()``."""
        return math.trunc(self.exact)

    @property
    def result_hex(self) -> str:
        return hex(self.result)


def _add(a: Fraction, b: Fraction) -> Fraction:
    return a + b


def _subtract(a: Fraction, b: Fraction) -> Fraction:
    return a - b


def _multiply(a: Fraction, b: Fraction) -> Fraction:
    return a * b


def _divide(a: Fraction, b: Fraction) -> Fraction:
    if b == 0:
        raise CalculationError(MSG_DIVISION_BY_ZERO)
    return a / b


def _remainder(a: Fraction, b: Fraction) -> Fraction:
    """Remainder of the division truncated toward zero (C's fmod): sign of ``a``."""
    if b == 0:
        raise CalculationError(MSG_DIVISION_BY_ZERO)
    return a - b * math.trunc(a / b)


OPERATIONS_V1: Mapping[str, Callable[[Fraction, Fraction], Fraction]] = {
    "sumar": _add,
    "restar": _subtract,
    "multiplicar": _multiply,
    "dividir": _divide,
}
# v2 adds one operation; everything v1 answers, v2 answers the same way.
OPERATIONS_V2: Mapping[str, Callable[[Fraction, Fraction], Fraction]] = {
    **OPERATIONS_V1,
    "modulo": _remainder,
}

REQUIRED_FIELDS = ("operacion", "numero1", "numero2")


def _operand(value: Any) -> Number:
    # bool is a subclass of int in Python: the seed would have computed True + 1.
    if type(value) not in (int, float):
        raise CalculationError(MSG_NOT_A_NUMBER)
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculationError(MSG_OPERAND_OUT_OF_RANGE)
    if not INT64_MIN <= value <= INT64_MAX:
        raise CalculationError(MSG_OPERAND_OUT_OF_RANGE)
    return value


def calculate(
    payload: Any,
    operations: Mapping[str, Callable[[Fraction, Fraction], Fraction]] = OPERATIONS_V1,
) -> Calculation:
    """Validate a decoded ``/calcular`` body and compute it exactly.

    Checks run in the order a client can act on: shape, missing fields, the
    operation, the operands, then the result.
    """
    if not isinstance(payload, dict):
        raise CalculationError(MSG_BODY_NOT_OBJECT)
    for field in REQUIRED_FIELDS:
        if field not in payload:
            raise CalculationError(missing_field_message(field))
    operation = payload["operacion"]
    if not isinstance(operation, str) or operation not in operations:
        raise CalculationError(MSG_INVALID_OPERATION)
    a = _operand(payload["numero1"])
    b = _operand(payload["numero2"])
    exact = operations[operation](Fraction(a), Fraction(b))
    calculation = Calculation(operation, a, b, exact)
    if not INT64_MIN <= calculation.result <= INT64_MAX:
        raise CalculationError(MSG_RESULT_OUT_OF_RANGE)
    return calculation
