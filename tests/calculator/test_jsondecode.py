"""The strict JSON decoder of request bodies: nesting depth measured before json.loads, duplicate
keys, constants and long integers refused, every refusal a CalculationError in Spanish."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calculator import arithmetic, jsondecode
from calculator.arithmetic import CalculationError
from calculator.jsondecode import MAX_DEPTH, MSG_INVALID_JSON, MSG_TOO_DEEP, decode, nesting_exceeds


def nested(depth: int, opening: str = "[", closing: str = "]") -> str:
    return opening * depth + closing * depth


def refusal(data: bytes) -> str:
    with pytest.raises(CalculationError) as refused:
        decode(data)
    return refused.value.message


def test_a_flat_object_decodes():
    assert decode(b'{"operacion": "sumar", "numero1": 2, "numero2": 3.5}') == {
        "operacion": "sumar", "numero1": 2, "numero2": 3.5,
    }


@pytest.mark.parametrize("opening, closing", [("[", "]"), ('{"a":', "}")])
def test_nesting_up_to_the_limit_decodes_and_one_more_is_refused(opening, closing):
    inner = "0" if opening == '{"a":' else ""
    at_limit = (opening * MAX_DEPTH + inner + closing * MAX_DEPTH).encode()
    over = (opening * (MAX_DEPTH + 1) + inner + closing * (MAX_DEPTH + 1)).encode()
    decode(at_limit)
    assert refusal(over) == MSG_TOO_DEEP


@pytest.mark.parametrize("data", [b"[" * 1000, b'{"a":' * 200, b"[" * 100_000, b'{"a": [' * 300])
def test_deep_nesting_is_refused_without_ever_reaching_json_loads(monkeypatch, data):
    def never(*args, **kwargs):
        raise AssertionError("json.loads called on a body nested too deep")

    monkeypatch.setattr(jsondecode.json, "loads", never)
    assert refusal(data) == MSG_TOO_DEEP


def test_brackets_inside_strings_are_text():
    text = json.dumps({"a": "[" * 500 + "{" * 500, "b": '\\"[[[[' * 50})
    assert not nesting_exceeds(text)
    assert decode(text.encode())["a"].startswith("[[[")


def test_an_escaped_backslash_ends_the_string_before_the_brackets():
    # "\\" is a whole string: the brackets after it are structure, and count.
    assert nesting_exceeds('["\\\\", ' + nested(MAX_DEPTH))
    assert not nesting_exceeds('["\\"' + "[" * 100 + '"]')  # \" does not end it


def test_an_unterminated_string_is_invalid_json_not_too_deep():
    assert refusal(b'{"a": "' + b"[" * 100) == MSG_INVALID_JSON


def test_the_depth_is_measured_on_characters_not_bytes():
    # In UTF-16-LE, U+5C00 is the bytes 00 5C: read as bytes, a backslash that would escape the
    # closing quote and hide the brackets after it from the scan.
    data = ('["\u5c00", ' + nested(1000) + "]").encode("utf-16-le")
    assert refusal(data) == MSG_TOO_DEEP


@pytest.mark.parametrize(
    "data, key",
    [
        (b'{"operacion": "dividir", "operacion": "sumar", "numero1": 1, "numero2": 2}', "operacion"),
        (b'{"numero1": 1, "numero2": 2, "numero1": 3, "operacion": "sumar"}', "numero1"),
        (b'{"x": {"a": 1, "a": 1}}', "a"),  # anywhere in the body
        (b'{"\\u0061": 1, "a": 2}', "a"),  # the same key, spelled two ways
    ],
)
def test_a_key_twice_in_one_object_is_refused_by_name(data, key):
    assert refusal(data) == jsondecode.duplicate_key_message(key)
    assert f"'{key}'" in jsondecode.duplicate_key_message(key)


def test_a_long_duplicate_key_is_cut_in_the_message():
    key = "k" * 500
    message = refusal(json.dumps({key: 1}).replace("}", f', "{key}": 2}}').encode())
    assert message.startswith("La clave 'kkk") and len(message) < 150


def test_the_same_key_in_two_objects_is_fine():
    assert decode(b'{"a": {"b": 1}, "c": {"b": 2}}') == {"a": {"b": 1}, "c": {"b": 2}}


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", MSG_INVALID_JSON),
        (b"{", MSG_INVALID_JSON),
        (b"\xff\xfe", MSG_INVALID_JSON),
        (b'{"a": "\xff"}', MSG_INVALID_JSON),
        (b"]]]][[[[", MSG_INVALID_JSON),
        (b'{"a": NaN}', arithmetic.MSG_OPERAND_OUT_OF_RANGE),
        (b'{"a": -Infinity}', arithmetic.MSG_OPERAND_OUT_OF_RANGE),
        (b'{"a": ' + b"1" * 21 + b"}", arithmetic.MSG_OPERAND_OUT_OF_RANGE),
    ],
)
def test_what_is_not_strict_json_is_refused(data, message):
    assert refusal(data) == message


def test_a_utf8_bom_and_utf16_decode_as_json_loads_would():
    assert decode(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}
    assert decode('{"a": 1}'.encode("utf-16")) == {"a": 1}


# -- the scan against the real depth ----------------------------------------------------------------

strings = st.text(alphabet=st.sampled_from('[]{}"\\ab\n\u5c00'), max_size=8)
values = st.recursive(
    st.none() | st.integers() | strings,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(strings, children, max_size=3),
    max_leaves=60,
)


def depth(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@given(value=values, limit=st.integers(0, 8), indent=st.sampled_from([None, 1]))
def test_the_scan_finds_exactly_the_nesting_depth_of_any_json(value, limit, indent):
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    assert nesting_exceeds(text, limit) == (depth(value) > limit)
