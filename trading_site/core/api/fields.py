"""Serializer fields the apps' APIs share."""

from __future__ import annotations

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
