"""Properties of the arithmetic and of POST /calcular, with hypothesis. tests/calculator/test_arithmetic.py
already holds sumar/restar/multiplicar/dividir against exact rational arithmetic (hex, truncation,
result range); here: modulo, the operands' range, and the same laws through the HTTP layer (JSON
decoding, the answer, the results file), where any JSON value must get a 4xx in Spanish; and deep,
wide and odd bodies, JSON or not, through the calculator and the gateway: never a 5xx."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calculator import arithmetic, jsondecode
from calculator.app import create_app
from calculator.arithmetic import INT64_MAX, INT64_MIN, OPERATIONS_V2, CalculationError
from calculator.config import CalculatorSettings
from calculator.results import format_line
from gateway.app import create_app as create_gateway
from gateway.config import GatewaySettings
from gateway.upstream import UpstreamResponse
from servicekit.errors import MESSAGES as HTTP_MESSAGES
from servicekit.lifecycle import DrainFlag
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
    jsondecode.MSG_INVALID_JSON,
    jsondecode.MSG_TOO_DEEP,
    HTTP_MESSAGES[413],
    *(arithmetic.missing_field_message(f) for f in arithmetic.REQUIRED_FIELDS),
}
_DUPLICATE_BEFORE, _, _DUPLICATE_AFTER = jsondecode.duplicate_key_message("\0").partition("\0")


def known_message(message: object) -> bool:
    """One of MESSAGES, or the duplicate key message with any key."""
    return isinstance(message, str) and (
        message in MESSAGES or (message.startswith(_DUPLICATE_BEFORE) and message.endswith(_DUPLICATE_AFTER))
    )


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
        assert set(body) == {"error"} and known_message(body["error"])


@EXAMPLES
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_get_an_answer_or_a_spanish_400(app, data):
    response = app.test_client().post("/calcular", data=data, content_type="application/json")
    body = response.get_json()
    assert response.status_code in (200, 400), (response.status_code, body)
    if response.status_code == 400:
        assert set(body) == {"error"} and known_message(body["error"])


@EXAMPLES
@given(digits=st.integers(21, 4_000))
def test_a_long_integer_literal_is_refused_before_it_is_converted(app, digits):
    # int() of a long literal costs quadratic time: the decoder refuses it by its length first.
    data = b'{"operacion": "sumar", "numero1": 1' + b"7" * (digits - 1) + b', "numero2": 0}'
    response = app.test_client().post("/calcular", data=data, content_type="application/json")
    expected = 400 if len(data) <= 1024 else 413
    assert response.status_code == expected


# -- deep, wide and odd bodies, through the calculator and the gateway ------------------------------

# Room for long arrays and deep nesting to reach the decoder rather than stop at the size limit.
ROOMY_BYTES = 1 << 16


class InProcessCalculator:
    """The gateway's CalculatorClient, answered by a calculator app in this process."""

    def __init__(self, app):
        self.url = "http://calculator/calcular"
        self.client = app.test_client()

    def post(self, body: bytes, headers: dict) -> UpstreamResponse:
        response = self.client.post("/calcular", data=body, headers=headers)
        return UpstreamResponse(response.status_code, response.data, {k.lower(): v for k, v in response.headers.items()})


@pytest.fixture(scope="module")
def roomy(tmp_path_factory):
    results = tmp_path_factory.mktemp("roomy") / "resultados.txt"
    settings = CalculatorSettings(version="v2", results_file=results, max_request_bytes=ROOMY_BYTES)
    calculator = create_app(settings, environ={}, drain_flag=DrainFlag())
    gateway = create_gateway(GatewaySettings(max_request_bytes=ROOMY_BYTES), environ={}, drain_flag=DrainFlag())
    # The view's GatewayApi calls this calculator instead of one over HTTP: everything else is the gateway's.
    gateway.view_functions["gateway.calcular"].__self__.client = InProcessCalculator(calculator)
    return {"calculator": calculator, "gateway": gateway}


odd_strings = st.text(max_size=30) | st.sampled_from(
    ["", "\ud800", "\udfff\ud800", "\x00", "\u2028", "\ufeff", '"', "\\", '\\"', "[" * 40, "{" * 40, "é", "\U0001f600", "operacion"]
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(10**40), 10**40)
    | st.floats()  # NaN and the infinities too: json.dumps writes them as NaN, Infinity
    | st.sampled_from([1e308, -1e308, 5e-324, 0.1, -0.0, 2.0**63, 2**63 - 1, -(2**63)])
    | odd_strings
)
wide_json = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=60) | st.dictionaries(odd_strings, children, max_size=30),
    max_leaves=200,
)


@st.composite
def deep_json(draw):
    """A value wrapped in up to three times MAX_DEPTH lists and objects."""
    value = draw(wide_json)
    for _ in range(draw(st.integers(0, 3 * jsondecode.MAX_DEPTH))):
        value = [value] if draw(st.booleans()) else {draw(odd_strings): value}
    return value


calculations = st.fixed_dictionaries(
    {"operacion": st.sampled_from(sorted(OPERATIONS_V2)) | odd_strings, "numero1": leaves, "numero2": leaves},
    optional={"extra": deep_json()},
)


def encode(value, encoding: str) -> bytes:
    if encoding == "ascii":
        return json.dumps(value).encode()
    # Lone surrogates as their bytes (what json.loads reads back with surrogatepass).
    return json.dumps(value, ensure_ascii=False).encode(encoding, "surrogatepass")


def assert_answer_or_spanish_4xx(response) -> None:
    assert response.status_code == 200 or 400 <= response.status_code < 500, (response.status_code, response.data[:300])
    body = response.get_json()
    if response.status_code == 200:
        assert body["resultado_hexa"] == hex(body["resultado"])
    else:
        assert set(body) == {"error"} and known_message(body["error"]), body


def post_to_both(roomy, data: bytes) -> None:
    """The calculator answers, or refuses in Spanish; the gateway answers the same."""
    answers = []
    for name in ("calculator", "gateway"):
        response = roomy[name].test_client().post("/calcular", data=data, content_type="application/json")
        assert_answer_or_spanish_4xx(response)
        answers.append((response.status_code, response.get_json()))
    assert answers[0] == answers[1]


@EXAMPLES
@given(value=wide_json | deep_json() | calculations, encoding=st.sampled_from(["ascii", "utf-8", "utf-16"]))
def test_deep_wide_and_odd_json_gets_an_answer_or_a_spanish_4xx_never_a_5xx(roomy, value, encoding):
    post_to_both(roomy, encode(value, encoding))


# Pieces of JSON in any order: brackets, quotes and escapes that do not pair up.
json_pieces = st.sampled_from(
    [b"[", b"]", b"{", b"}", b'"', b"\\", b'\\"', b":", b",", b" ", b"1", b"-", b"e9", b"1" * 30, b"NaN",
     b'"operacion"', b'"sumar"', b'"numero1"', b'"numero2"', b"\xff", b"\x00", b"\xef\xbb\xbf"]
)


@st.composite
def deep_bytes(draw):
    """Up to 3,000 levels, written as bytes (json.dumps would itself recurse too deep), closed or not."""
    depth = draw(st.integers(0, 3000))
    opening, closing = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'{"a":[', b"]}")]))
    inner = draw(st.sampled_from([b"0", b"", b'"x"', b'{"operacion": "sumar", "numero1": 2, "numero2": 3}']))
    return opening * depth + inner + (closing * depth if draw(st.booleans()) else b"")


@EXAMPLES
@given(data=st.binary(max_size=4096) | st.lists(json_pieces, max_size=3000).map(b"".join) | deep_bytes())
def test_any_bytes_get_an_answer_or_a_spanish_4xx_never_a_5xx(roomy, data):
    post_to_both(roomy, data)


@EXAMPLES
@given(depth=st.integers(0, 3 * jsondecode.MAX_DEPTH), lists=st.lists(st.booleans(), min_size=3 * jsondecode.MAX_DEPTH))
def test_a_calculation_is_answered_exactly_up_to_the_depth_limit(roomy, depth, lists):
    extra = 0
    for as_list in lists[:depth]:
        extra = [extra] if as_list else {"k": extra}
    payload = {"operacion": "sumar", "numero1": 2, "numero2": 3, "extra": extra}
    response = roomy["calculator"].test_client().post("/calcular", json=payload)
    if depth + 1 <= jsondecode.MAX_DEPTH:  # the object itself is one level
        assert (response.status_code, response.get_json()["resultado"]) == (200, 5)
    else:
        assert (response.status_code, response.get_json()) == (400, {"error": jsondecode.MSG_TOO_DEEP})
