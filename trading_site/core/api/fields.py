"""Serializer fields the apps' APIs share."""

from __future__ import annotations

import copy
from typing import Any

from rest_framework import serializers

# The shapes of the APIs' numbers: a price (4 places, as the exchanges quote), rupees (2), and
# the largest id a caller may send (a BIGINT primary key).
PRICE: dict[str, Any] = {"max_digits": 15, "decimal_places": 4}
MONEY: dict[str, Any] = {"max_digits": 18, "decimal_places": 2}
BIGINT_MAX = 2**63 - 1


class ConfirmationField(serializers.CharField):
    """A word the caller must type exactly (e.g. "KILL"): a guard against a stray call."""

    def __init__(self, word: str, *, help_text: str = "", refusal: str = "", **kwargs: Any) -> None:
        self.word = word
        self.refusal = refusal or f'type "{word}" to confirm'
        super().__init__(help_text=help_text or f'Must be exactly "{word}".', **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value != self.word:
            raise serializers.ValidationError(self.refusal)
        return value


class FlatFieldsCopied(serializers.Serializer):
    """A Serializer whose instances copy the class's declared fields shallowly where a field
    holds no field of its own (DRF's `get_fields` deep-copies every one: each field built
    again from its arguments, a placement's largest parsing cost). What binding a field sets
    (name, parent, label, source) is assigned to the copy alone; what the copies share (the
    validators list, error messages, choices) DRF only reads after construction, as long as
    nobody changes one in place (`field.validators.append`: reassign instead). A field with
    a child field (a list, a dict, a nested serializer) is deep-copied as DRF does, since its
    child is bound to it."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            name: copy.copy(field) if _flat(field) else copy.deepcopy(field)
            for name, field in self._declared_fields.items()
        }


def _flat(field: serializers.Field) -> bool:
    return not (
        isinstance(field, serializers.BaseSerializer)
        or hasattr(field, "child")
        or hasattr(field, "child_relation")
    )
