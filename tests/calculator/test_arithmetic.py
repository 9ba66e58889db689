"""The arithmetic, directly: the seed's contract and what the seed got wrong."""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calculator import arithmetic
from calculator.arithmetic import (
    INT64_MAX,
    INT64_MIN,
    OPERATIONS_V2,
    CalculationError,
    calculate,
)


def calc(operation, a, b, operations=arithmetic.OPERATIONS_V1):
    return calculate({"operacion": operation, "numero1": a, "numero2": b}, operations)


@pytest.mark.parametrize(
    "operation, a, b, result, result_hex",
    [
        ("sumar", 2, 3, 5, "0x5"),
        ("sumar", 2.5, 2.5, 5, "0x5"),
        ("restar", 2, 9, -7, "-0x7"),
        ("multiplicar", 6, 7, 42, "0x2a"),
        ("multiplicar", -1.5, 3, -4, "-0x4"),  # -4.5 truncated toward zero
        ("dividir", 7, 2, 3, "0x3"),
        ("dividir", -7, 2, -3, "-0x3"),  # toward zero, not floor (-4)
        ("dividir", 7, -2, -3, "-0x3"),
        ("dividir", 1, 3, 0, "0x0"),
        ("dividir", 255, 1, 255, "0xff"),
    ],
)
def test_seed_results_truncate_toward_zero(operation, a, b, result, result_hex):
    calculation = calc(operation, a, b)
    assert calculation.result == result
    assert calculation.result_hex == result_hex


def test_large_integers_are_exact_where_floats_would_round():
    # float(2**53 + 1) == 2**53: the seed's float division lost the last unit.
    assert calc("dividir", 2**53 + 1, 1).result == 2**53 + 1
    assert calc("sumar", INT64_MAX - 1, 1).result == INT64_MAX


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"operacion": "dividir", "numero1": 1, "numero2": 0}, "No se puede dividir por cero"),
        ({"operacion": "dividir", "numero1": 1, "numero2": 0.0}, "No se puede dividir por cero"),
        ({"operacion": "potencia", "numero1": 1, "numero2": 2}, "Operación no válida"),
        ({"operacion": 5, "numero1": 1, "numero2": 2}, "Operación no válida"),
        ({"operacion": "modulo", "numero1": 1, "numero2": 2}, "Operación no válida"),  # v2 only
        ({"operacion": "sumar", "numero1": "5", "numero2": 2}, arithmetic.MSG_NOT_A_NUMBER),
        ({"operacion": "restar", "numero1": 5, "numero2": None}, arithmetic.MSG_NOT_A_NUMBER),
        ({"operacion": "sumar", "numero1": True, "numero2": 2}, arithmetic.MSG_NOT_A_NUMBER),
        ({"operacion": "sumar", "numero1": [1], "numero2": 2}, arithmetic.MSG_NOT_A_NUMBER),
        ({"operacion": "sumar", "numero1": float("nan"), "numero2": 2}, arithmetic.MSG_OPERAND_OUT_OF_RANGE),
        ({"operacion": "sumar", "numero1": float("inf"), "numero2": 2}, arithmetic.MSG_OPERAND_OUT_OF_RANGE),
        ({"operacion": "sumar", "numero1": INT64_MAX + 1, "numero2": 0}, arithmetic.MSG_OPERAND_OUT_OF_RANGE),
        ({"operacion": "sumar", "numero1": 1e19, "numero2": 0}, arithmetic.MSG_OPERAND_OUT_OF_RANGE),
        ({"operacion": "sumar", "numero1": INT64_MAX, "numero2": 1}, arithmetic.MSG_RESULT_OUT_OF_RANGE),
        ({"operacion": "multiplicar", "numero1": 2**62, "numero2": -3}, arithmetic.MSG_RESULT_OUT_OF_RANGE),
        ({"numero1": 1, "numero2": 2}, "Falta el campo obligatorio 'operacion'"),
        ({"operacion": "sumar", "numero2": 2}, "Falta el campo obligatorio 'numero1'"),
        ([1, 2], arithmetic.MSG_BODY_NOT_OBJECT),
        ("sumar", arithmetic.MSG_BODY_NOT_OBJECT),
    ],
)
def test_refused_inputs_name_the_problem_in_spanish(payload, message):
    with pytest.raises(CalculationError) as refused:
        calculate(payload)
    assert refused.value.message == message


def test_int64_bounds_themselves_are_accepted():
    assert calc("sumar", INT64_MIN, 0).result == INT64_MIN
    assert calc("restar", INT64_MAX, 0).result == INT64_MAX


def test_v2_adds_modulo_with_the_sign_of_the_dividend():
    assert calc("modulo", 7, 3, OPERATIONS_V2).result == 1
    assert calc("modulo", -7, 3, OPERATIONS_V2).result == -1
    assert calc("modulo", 7.5, 2, OPERATIONS_V2).exact == Fraction(3, 2)
    with pytest.raises(CalculationError, match="dividir por cero"):
        calc("modulo", 1, 0, OPERATIONS_V2)


def test_v2_answers_every_v1_operation_the_same_way():
    for operation in arithmetic.OPERATIONS_V1:
        assert calc(operation, 17, 5, OPERATIONS_V2) == calc(operation, 17, 5)


in_range = st.integers(INT64_MIN, INT64_MAX)
finite = st.floats(min_value=-1e18, max_value=1e18, allow_nan=False)
operand = in_range | finite


@given(operation=st.sampled_from(sorted(arithmetic.OPERATIONS_V1)), a=operand, b=operand)
def test_properties_hold_for_any_operands(operation, a, b):
    exact_ops = {
        "sumar": lambda x, y: x + y,
        "restar": lambda x, y: x - y,
        "multiplicar": lambda x, y: x * y,
        "dividir": lambda x, y: x / y,
    }
    try:
        calculation = calc(operation, a, b)
    except CalculationError as refused:
        if refused.message == arithmetic.MSG_DIVISION_BY_ZERO:
            assert operation == "dividir" and b == 0
            return
        assert refused.message == arithmetic.MSG_RESULT_OUT_OF_RANGE
        exact = exact_ops[operation](Fraction(a), Fraction(b))
        assert not INT64_MIN <= int(exact) <= INT64_MAX
        return
    exact = exact_ops[operation](Fraction(a), Fraction(b))
    assert calculation.exact == exact  # agrees with exact rational arithmetic
    assert calculation.result == int(exact)  # int() of a Fraction truncates toward zero
    assert abs(calculation.result) <= abs(exact) < abs(calculation.result) + 1
    assert calculation.result_hex == hex(calculation.result)
    assert INT64_MIN <= calculation.result <= INT64_MAX
