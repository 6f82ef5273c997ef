"""`plain_validated`: what a serializer's `run_validation` returns for input of the plain
shape clients send (text, whole numbers, decimals as text within the field's digits), read
without DRF's per-field machinery (empty-value checks, validators, error plumbing), which
costs more than the rules themselves when one serializer validates 500 items of a batch.

Anything else (a missing required field, a null where none is allowed, a number as text,
a float, text too long, a choice not listed, a field type or validator not handled here)
gives None: the caller then runs the serializer itself, whose answer and error messages
stay the only ones. So the result is always exactly the serializer's, or nothing.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.core import validators as django_validators
from rest_framework import fields as drf_fields
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.validators import ProhibitSurrogateCharactersValidator

# The validators DRF attaches itself from a field's own arguments (max_length, min_value...),
# which the readers below check through those arguments.
_BUILT_IN_VALIDATORS = (
    django_validators.MaxLengthValidator,
    django_validators.MinLengthValidator,
    django_validators.MaxValueValidator,
    django_validators.MinValueValidator,
    django_validators.ProhibitNullCharactersValidator,
    ProhibitSurrogateCharactersValidator,
)


class _NotPlain(Exception):
    """The value needs the serializer's own judgement."""


def plain_validated(serializer: serializers.Serializer, data: object) -> dict[str, Any] | None:
    """`serializer.run_validation(data)` for plain input, or None (see the module)."""
    try:
        return _read_serializer(serializer, data)
    except _NotPlain:
        return None


def _read_serializer(serializer: serializers.Serializer, data: object) -> dict[str, Any]:
    plan = _plan_of(serializer)
    if plan is None or type(data) is not dict:
        raise _NotPlain
    result: dict[str, Any] = {}
    for name, field, reader in plan:
        if name in data:
            value = data[name]
            if value is None:
                if not field.allow_null:
                    raise _NotPlain
                result[name] = None
            else:
                result[name] = reader(field, value)
        elif field.required:
            raise _NotPlain  # "This field is required."
        elif field.default is not empty:
            result[name] = field.get_default()
    return result


_Plan = list[tuple[str, drf_fields.Field, Callable[[Any, Any], Any]]]
# Per serializer instance (a batch's one validator and its targets' child): its fields'
# readers, or None when it cannot be read plainly at all.
_PLANS: weakref.WeakKeyDictionary[serializers.Serializer, _Plan | None] = (
    weakref.WeakKeyDictionary()
)


def _plan_of(serializer: serializers.Serializer) -> _Plan | None:
    try:
        return _PLANS[serializer]
    except KeyError:
        pass
    plan: _Plan | None = None if _has_rules_of_its_own(serializer) else _field_readers(serializer)
    _PLANS[serializer] = plan
    return plan


def _field_readers(serializer: serializers.Serializer) -> _Plan | None:
    plan: _Plan = []
    for field in serializer._writable_fields:
        reader = _reader_of(field)
        name = field.field_name
        if reader is None or name is None or field.source != name:
            return None
        plan.append((name, field, reader))
    return plan


def _has_rules_of_its_own(
    serializer: serializers.Serializer | serializers.ListSerializer,
) -> bool:
    """A `validate`, `validate_<field>` or validators of the serializer's own."""
    if serializer.validators or getattr(serializer.root, "partial", False):
        return True
    if isinstance(serializer, serializers.ListSerializer):
        return type(serializer).validate is not serializers.ListSerializer.validate
    if type(serializer).validate is not serializers.Serializer.validate:
        return True
    return any(hasattr(serializer, f"validate_{name}") for name in serializer.fields)


def _reader_of(field: drf_fields.Field) -> Callable[[Any, Any], Any] | None:
    """How a field's non-null value is read, or None: a field this module does not know."""
    if field.read_only:
        return None
    if not all(isinstance(rule, _BUILT_IN_VALIDATORS) for rule in field.validators):
        return None
    reader = _READERS.get(type(field))
    if reader is None and isinstance(field, drf_fields.ChoiceField):
        # A choice field that only normalises its input first (`normalize_choice`).
        reader = _choice if hasattr(type(field), "normalize_choice") else None
    return reader


def _text(field: drf_fields.CharField, value: Any) -> str:
    # ASCII without NUL: what the null and surrogate character validators let through.
    if type(value) is not str or not value.isascii() or "\x00" in value:
        raise _NotPlain
    if not field.trim_whitespace:
        raise _NotPlain
    text = value.strip()
    if text == "":
        if not field.allow_blank:
            raise _NotPlain
        return ""
    if field.max_length is not None and len(text) > field.max_length:
        raise _NotPlain
    if field.min_length is not None and len(text) < field.min_length:
        raise _NotPlain
    return text


def _whole_number(field: drf_fields.IntegerField, value: Any) -> int:
    if type(value) is not int:
        raise _NotPlain
    if field.min_value is not None and value < field.min_value:
        raise _NotPlain
    if field.max_value is not None and value > field.max_value:
        raise _NotPlain
    return value


_DECIMAL_SHAPES: dict[tuple[int, int], tuple[re.Pattern[str], Decimal]] = {}


def _decimal(field: drf_fields.DecimalField, value: Any) -> Decimal:
    if type(value) is int:
        value = str(value)
    if type(value) is not str:
        raise _NotPlain
    if (
        field.max_digits is None
        or field.decimal_places is None
        or field.localize
        or field.min_value is not None
        or field.max_value is not None
    ):
        raise _NotPlain
    shape = _DECIMAL_SHAPES.get((field.max_digits, field.decimal_places))
    if shape is None:
        whole, places = field.max_digits - field.decimal_places, field.decimal_places
        # At most `whole` digits before the point and `places` after: within max_digits,
        # so DRF's precision checks pass and its quantize only pads with zeros.
        digits = rf"-?\d{{1,{whole}}}(?:\.\d{{1,{places}}})?" if places else rf"-?\d{{1,{whole}}}"
        shape = (re.compile(digits), Decimal(".1") ** places)
        _DECIMAL_SHAPES[(field.max_digits, field.decimal_places)] = shape
    pattern, step = shape
    text = value.strip()
    if pattern.fullmatch(text) is None:
        raise _NotPlain
    return Decimal(text).quantize(step)


def _choice(field: drf_fields.ChoiceField, value: Any) -> Any:
    if type(value) is not str:
        raise _NotPlain
    normalize = getattr(type(field), "normalize_choice", None)
    text = normalize(value) if normalize is not None else value
    if text == "" and field.allow_blank:
        return ""
    try:
        return field.choice_strings_to_values[text]
    except KeyError:
        raise _NotPlain from None


def _list_of(field: serializers.ListSerializer, value: Any) -> list[dict[str, Any]]:
    if type(value) is not list or _has_rules_of_its_own(field):
        raise _NotPlain
    if (
        getattr(field, "max_length", None) is not None
        or getattr(field, "min_length", None) is not None
    ):
        raise _NotPlain
    if not value and not field.allow_empty:
        raise _NotPlain
    child = field.child
    if not isinstance(child, serializers.Serializer):
        raise _NotPlain
    return [_read_serializer(child, item) for item in value]


_READERS: dict[type, Any] = {
    drf_fields.CharField: _text,
    drf_fields.IntegerField: _whole_number,
    drf_fields.DecimalField: _decimal,
    drf_fields.ChoiceField: _choice,
    serializers.ListSerializer: _list_of,
}
