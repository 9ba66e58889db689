"""Properties of the arithmetic and of POST /calcular, with hypothesis. tests/calculator/test_arithmetic.py
already holds sumar/restar/multiplicar/dividir against exact rational arithmetic (hex, truncation,
result range); here: modulo, the operands' range, and the same laws through the HTTP layer (JSON
decoding, the answer, the results file), where any JSON value must get a 4xx in Spanish."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calculator import arithmetic
from calculator.app import create_app
from calculator.config import CalculatorSettings
from servicekit.lifecycle import DrainFlag
from calculator.arithmetic import INT64_MAX, INT64_MIN, OPERATIONS_V2, CalculationError
from calculator.results import format_line
from tests.reliability.support import sized

EXAMPLES = settings(max_examples=sized(300, 3_000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
in_range = st.integers(INT64_MIN, INT64_MAX)
finite = st.floats(min_value=-1e18, max_value=1e18, allow_nan=False)
operand = in_range | finite
outside = (
    st.integers(INT64_MAX + 1, 2**200)
    | st.integers(-(2**200), INT64_MIN - 1)
    | st.floats(min_value=2.0**63)
    | st.floats(max_value=-(2.0**63) - 2048)  # the float below INT64_MIN (-2**63 itself is in range)
    | st.sampled_from([math.inf, -math.inf, math.nan])
)
# Every message a refused /calcular may carry: all Spanish, none an English framework default.
MESSAGES = {
    arithmetic.MSG_INVALID_OPERATION,
    arithmetic.MSG_NOT_A_NUMBER,
    arithmetic.MSG_DIVISION_BY_ZERO,
    arithmetic.MSG_BODY_NOT_OBJECT,
    arithmetic.MSG_OPERAND_OUT_OF_RANGE,
    arithmetic.MSG_RESULT_OUT_OF_RANGE,
    "El cuerpo no es JSON válido",
    "El cuerpo de la solicitud es demasiado grande",
    *(arithmetic.missing_field_message(f) for f in arithmetic.REQUIRED_FIELDS),
}


@EXAMPLES
@given(a=operand, b=operand)
def test_modulo_is_the_remainder_of_the_truncated_division(a, b):
    try:
        calculation = arithmetic.calculate({"operacion": "modulo", "numero1": a, "numero2": b}, OPERATIONS_V2)
    except CalculationError as refused:
        assert refused.message == arithmetic.MSG_DIVISION_BY_ZERO and b == 0
        return
    x, y = Fraction(a), Fraction(b)
    quotient = math.trunc(x / y)
    assert calculation.exact == x - y * quotient  # a = b * trunc(a / b) + r, exactly
    assert abs(calculation.exact) < abs(y)
    assert calculation.exact == 0 or (calculation.exact > 0) == (x > 0)  # the sign of the dividend
    assert calculation.result == math.trunc(calculation.exact)
    assert calculation.result_hex == hex(calculation.result)


@EXAMPLES
@given(operation=st.sampled_from(sorted(OPERATIONS_V2)), bad=outside, good=operand, first=st.booleans())
def test_any_operand_outside_64_bits_or_not_finite_is_refused(operation, bad, good, first):
    a, b = (bad, good) if first else (good, bad)
    try:
        arithmetic.calculate({"operacion": operation, "numero1": a, "numero2": b}, OPERATIONS_V2)
    except CalculationError as refused:
        assert refused.message == arithmetic.MSG_OPERAND_OUT_OF_RANGE
    else:
        raise AssertionError(f"{a!r}, {b!r} accepted")


def test_the_64_bit_bounds_and_their_floats():
    for value in (INT64_MIN, INT64_MAX, float(INT64_MIN), -9.2e18, 9.2e18):
        assert arithmetic.calculate({"operacion": "sumar", "numero1": value, "numero2": 0}).result == math.trunc(value)
    for value in (INT64_MAX + 1, INT64_MIN - 1, float(2**63)):
        try:
            arithmetic.calculate({"operacion": "sumar", "numero1": value, "numero2": 0})
        except CalculationError as refused:
            assert refused.message == arithmetic.MSG_OPERAND_OUT_OF_RANGE
        else:
            raise AssertionError(value)


# -- through the HTTP layer ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """One v2 calculator for every example (a fixture per example would be rebuilt by pytest, not hypothesis)."""
    results = tmp_path_factory.mktemp("properties") / "resultados.txt"
    return create_app(CalculatorSettings(version="v2", results_file=results), environ={}, drain_flag=DrainFlag())


def last_line(path) -> bytes:
    return path.read_bytes().splitlines(keepends=True)[-1]


@EXAMPLES
@given(operation=st.sampled_from(sorted(OPERATIONS_V2)), a=operand, b=operand)
def test_the_answer_and_the_line_are_the_arithmetics(app, operation, a, b):
    results = app.extensions["calculator_settings"].results_file
    response = app.test_client().post("/calcular", json={"operacion": operation, "numero1": a, "numero2": b})
    body = response.get_json()
    try:
        expected = arithmetic.calculate({"operacion": operation, "numero1": a, "numero2": b}, OPERATIONS_V2)
    except CalculationError as refused:
        assert (response.status_code, body) == (400, {"error": refused.message})
        return
    assert response.status_code == 200
    assert (body["resultado"], body["resultado_hexa"]) == (expected.result, expected.result_hex)
    assert body["resultado_hexa"] == hex(body["resultado"])
    if operation == "dividir":
        assert body["resultado_exacto"] == float(expected.exact)
    assert last_line(results) == format_line(expected.result, expected.result_hex)


@EXAMPLES
@given(payload=json_values | st.dictionaries(st.sampled_from(["operacion", "numero1", "numero2", "x"]), json_values))
def test_any_json_body_gets_an_answer_or_a_spanish_400_never_a_500(app, payload):
    data = json.dumps(payload).encode()
    response = app.test_client().post("/calcular", data=data, content_type="application/json")
    body = response.get_json()
    if response.status_code == 200:
        assert body["resultado_hexa"] == hex(body["resultado"])
    else:
        assert response.status_code in (400, 413), (response.status_code, body)
        assert set(body) == {"error"} and body["error"] in MESSAGES


@EXAMPLES
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_get_an_answer_or_a_spanish_400(app, data):
    response = app.test_client().post("/calcular", data=data, content_type="application/json")
    body = response.get_json()
    assert response.status_code in (200, 400), (response.status_code, body)
    if response.status_code == 400:
        assert set(body) == {"error"} and body["error"] in MESSAGES


@EXAMPLES
@given(digits=st.integers(21, 4_000))
def test_a_long_integer_literal_is_refused_before_it_is_converted(app, digits):
    # int() of a long literal costs quadratic time: the decoder refuses it by its length first.
    data = b'{"operacion": "sumar", "numero1": 1' + b"7" * (digits - 1) + b', "numero2": 0}'
    response = app.test_client().post("/calcular", data=data, content_type="application/json")
    expected = 400 if len(data) <= 1024 else 413
    assert response.status_code == expected
