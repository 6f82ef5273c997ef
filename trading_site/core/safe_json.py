"""Parsing JSON that strangers send: nesting depth bounded before the parser recurses.

`json.loads` recurses once per nesting level: 1,000 levels fit in 2 KB and raise
RecursionError, which nothing expects (a 500 with a traceback per request, a WebSocket
closed with 1011). Every parser of outside JSON goes through `loads` here (the API's
parser, the web forms' JSON fields, the WebSocket consumer), which refuses a document nested
deeper than JSON_MAX_DEPTH with an ordinary ValueError before parsing it.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from django import forms
from django.conf import settings

DEFAULT_MAX_DEPTH = 32
# A JSON string literal (escapes included), and anything that is not a bracket.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class JsonTooDeep(ValueError):
    def __init__(self, max_depth: int):
        super().__init__(f"JSON nested deeper than {max_depth} levels")
        self.max_depth = max_depth


def max_depth() -> int:
    return int(getattr(settings, "JSON_MAX_DEPTH", DEFAULT_MAX_DEPTH))


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting of a JSON text (strings skipped), in C-speed passes:
    the brackets themselves walked by `map` and `accumulate` too (a batch's body has some
    4,000)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)))


_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def check_depth(text: str, limit: int | None = None) -> None:
    limit = max_depth() if limit is None else limit
    if nesting_depth(text) > limit:
        raise JsonTooDeep(limit)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):  # 1e309: json would hand an infinity on to the validators
        raise ValueError(f"number out of range: {literal[:40]}")
    return value


# A \u escape of a surrogate: the only way a JSON text holds one (its UTF-8 cannot). A pair
# of them is one character (an emoji from an ASCII-only encoder); one alone is no text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _holds_lone_surrogate(value: Any) -> bool:
    """Whether a string (or key) in the parsed document has no UTF-8 form."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def loads(text: str | bytes, *, limit: int | None = None, **kwargs: Any) -> Any:
    """json.loads for outside input: JsonTooDeep (a ValueError) past the depth limit, a
    ValueError for a number literal too large for a float, and one for a lone surrogate
    ("\\ud800" unpaired), which can be neither stored (the database driver cannot encode
    it) nor echoed in an answer (the renderer cannot): a 500 wherever it went."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")
    check_depth(text, limit)
    kwargs.setdefault("parse_float", _finite_float)
    try:
        parsed = json.loads(text, **kwargs)
    except RecursionError:  # a backstop: the depth check should have caught it
        raise JsonTooDeep(limit if limit is not None else max_depth()) from None
    if _SURROGATE_ESCAPE.search(text) and _holds_lone_surrogate(parsed):
        raise ValueError("a string holds a lone surrogate (an unpaired \\ud800 to \\udfff)")
    return parsed


class DepthLimitedJSONField(forms.JSONField):
    """forms.JSONField whose input is parsed by `loads` (a deep document is a form error)."""

    def to_python(self, value):
        if isinstance(value, str) and value.strip() and not self.disabled:
            try:
                check_depth(value)
            except JsonTooDeep as exc:
                raise forms.ValidationError(str(exc), code="invalid") from None
        return super().to_python(value)

    def bound_data(self, data, initial):
        if isinstance(data, str):
            try:
                check_depth(data)
            except JsonTooDeep:
                return forms.fields.InvalidJSONInput(data)
        return super().bound_data(data, initial)
