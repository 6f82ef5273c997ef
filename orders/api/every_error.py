"""One answer with every error: what failed to parse and what breaks an order rule.

DRF stops at the serializer: a missing quantity used to hide a price off the tick until the
next request. Here the fields that did parse still go through the order rules
(orders.validation's `*_order_errors`), and both sets of errors come back in the usual
envelope (`{"error", "code": "VALIDATION_ERROR", "details": {field: [...]}}`), the
parse errors first. A field that failed to parse is reported once, by the parser.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.fields import SkipField

from orders.validation import FieldErrors
from trading_site.core.api.errors import _plain_details, _validation_message
from trading_site.core.errors import ValidationFailed


def parsed_fields(serializer: serializers.Serializer) -> dict[str, Any]:
    """Every field of an invalid serializer: its parsed value, or None where it failed."""
    values: dict[str, Any] = {}
    for name, field in serializer.fields.items():
        try:
            values[name] = field.run_validation(field.get_value(serializer.initial_data))
        except (ValidationError, SkipField):
            values[name] = None
    return values


def merged_errors(parse_errors: dict, rule_errors: FieldErrors) -> dict[str, list]:
    """Parse errors first; rule errors only for the fields that did parse."""
    merged = _plain_details(parse_errors)
    for name, messages in rule_errors.items():
        if name not in merged:
            merged[name] = list(messages)
    return merged


def every_error(parse_errors: dict, rule_errors: FieldErrors) -> ValidationFailed:
    merged = merged_errors(parse_errors, rule_errors)
    return ValidationFailed(_validation_message(merged), details=merged)
