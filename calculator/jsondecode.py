"""The request body as strict JSON, with no I/O: refused with a ``CalculationError`` (a Spanish
400) for what Python's ``json`` accepts but a calculation must not.

- Nesting deeper than ``MAX_DEPTH``: ``json.loads`` recurses once per list or object, so a body of
  a thousand ``[`` raised RecursionError (a 500, and a stack's worth of work per request). The depth
  is measured on the text before ``json.loads`` sees it, so no recursion happens at all.
- A key twice in one object: ``json.loads`` keeps the last, so ``{"operacion": "dividir",
  "operacion": "sumar"}`` was a sum that a filter reading the first value would take for a division.
- ``NaN``, ``Infinity`` and integer literals too long for 64 bits (``int()`` of a long literal
  costs quadratic time): refused before they become numbers.
"""

from __future__ import annotations

import json
import re

from calculator import arithmetic
from calculator.arithmetic import CalculationError
from servicekit import messages

# The valid payload is one flat object (depth 1). 32 leaves room for a client's nested extra
# fields, which are ignored, and stays far below Python's recursion limit (1000).
MAX_DEPTH = 32
# 20 characters hold any 64-bit integer; longer ones are refused before int() converts them.
MAX_INT_LITERAL = 20
# Keys are echoed in the error message: a long one is cut there, not in the check.
_KEY_SHOWN = 64

MSG_INVALID_JSON = messages.INVALID_JSON
MSG_TOO_DEEP = messages.TOO_DEEP.format(depth=MAX_DEPTH)


def duplicate_key_message(key: str) -> str:
    shown = key if len(key) <= _KEY_SHOWN else key[:_KEY_SHOWN] + "…"
    return messages.DUPLICATE_KEY.format(key=shown)


# One token of the scan: a bracket, or a whole string (escapes included; possessive, so each
# string is read once, in linear time). A string left open runs to the end of the body.
_TOKEN = re.compile(r'[\[\]{}]|"(?:[^"\\]|\\.)*+"?', re.DOTALL)


def nesting_exceeds(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether ``text`` opens more than ``limit`` lists or objects inside one another, brackets
    within strings not counted. For a body that is not JSON the answer only has to be an upper
    bound on how deep ``json.loads`` could recurse before it stops at the first error."""
    if text.count("[") + text.count("{") <= limit:
        return False  # every honest payload: no scan needed
    depth = 0
    for token in _TOKEN.finditer(text):
        first = text[token.start()]
        if first in "[{":
            depth += 1
            if depth > limit:
                return True
        elif first in "]}":
            depth -= 1  # below zero only past an error, where json.loads has already stopped
    return False


def _reject_constant(name: str):
    raise CalculationError(arithmetic.MSG_OPERAND_OUT_OF_RANGE)


def _parse_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_LITERAL:
        raise CalculationError(arithmetic.MSG_OPERAND_OUT_OF_RANGE)
    return int(literal)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    decoded = {}
    for key, value in pairs:
        if key in decoded:
            raise CalculationError(duplicate_key_message(key))
        decoded[key] = value
    return decoded


def decode(data: bytes) -> object:
    """``data`` as JSON, or ``CalculationError`` with the message the client sees."""
    try:
        # As json.loads decodes bytes (UTF-8, 16 or 32), but here, so that the depth is measured on
        # characters: in UTF-16 a byte 0x22 or 0x5C may be half of a letter, not a quote or escape.
        text = data.decode(json.detect_encoding(data), "surrogatepass")
    except UnicodeDecodeError:
        raise CalculationError(MSG_INVALID_JSON) from None
    if nesting_exceeds(text):
        raise CalculationError(MSG_TOO_DEEP)
    try:
        return json.loads(
            text, parse_constant=_reject_constant, parse_int=_parse_int, object_pairs_hook=_unique_keys
        )
    except CalculationError:
        raise
    # JSONDecodeError is a ValueError; RecursionError cannot happen past the depth check, and is
    # caught anyway: whatever the body, it is never a 500.
    except (ValueError, RecursionError):
        raise CalculationError(MSG_INVALID_JSON) from None
