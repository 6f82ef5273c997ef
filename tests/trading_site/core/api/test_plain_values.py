"""`plain_validated` reads a batch item exactly as its serializer would, or not at all: the
serializer stays the judge of every answer and error message."""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from typing import Any

import pytest
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from orders.api.serializers import BatchItemSerializer
from tests.factories import batch_item
from trading_site.core.api.plain_values import plain_validated

REFUSED = "refused by the serializer"

ORDINARY = [
    batch_item(1),
    batch_item(2, targets=[{"price": "105.00", "lots": 1}, {"price": 110, "lots": 1}]),
    batch_item(3, targets=[]),
    {k: v for k, v in batch_item(4).items() if k != "targets"},
    batch_item(
        5,
        trading_symbol="",
        exchange_token=2885,
        exchange_segment=" nsecm ",
        order_side="sell",
        product_type="Nrml",
        entry_price=99,
        entry_stop_price="99.05",
        sl_price="-5",
        sl_stop_price=None,
        strategy_name="  swing  ",
        client_order_id="key-5",
        unknown_field={"ignored": True},
    ),
    batch_item(6, entry_price="12345678901.1234", sl_price="0.0001", exchange_segment=""),
    batch_item(7, targets=[{"price": "105", "percent": "33.3333"}, {"price": "1", "percent": 100}]),
    batch_item(8, targets=[{"price": "105", "percent": None, "lots": 2}]),
]

# Each field's unusual values (wrong types, spellings at the edge, values out of range),
# each tried alone in an otherwise ordinary item.
UNUSUAL_VALUES = {
    "no_of_lots": ["2", "many", True, 2.0, None],
    "entry_price": ["99.12345", "1e3", "NaN", "", "  ", 99.5, "123456789012.5", "+99"],
    "trading_symbol": [None, 5, "X" * 101, "RELIANCE\u00e9", "REL\x00IANCE"],
    "order_side": ["HOLD", ""],
    "exchange_token": [0, "2885"],
    "exchange_segment": ["MARS"],
    "targets": [
        "105",
        [1],
        [{"price": None}],
        [{"percent": "50"}],
        [{"price": "105", "lots": "1"}],
        [{"price": "105", "percent": "1000"}],
        None,
    ],
    "external_id": ["E" * 65],
    "client_order_id": ["   "],
    "product_type": [None],
}
UNUSUAL = [
    {k: v for k, v in batch_item(10).items() if k != "no_of_lots"},
    *(
        batch_item(10, **{field: value})
        for field, values in UNUSUAL_VALUES.items()
        for value in values
    ),
]


def _shown(value: Any) -> Any:
    """A value with its exact types: Decimals by their digits and exponent."""
    if isinstance(value, (dict, OrderedDict)):
        return {key: _shown(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shown(item) for item in value]
    if isinstance(value, Decimal):
        return ("Decimal", str(value))
    return (type(value).__name__, value)


def _by_the_serializer(raw: dict) -> Any:
    try:
        return _shown(BatchItemSerializer().run_validation(raw))
    except ValidationError:
        return REFUSED


@pytest.mark.parametrize("raw", ORDINARY)
def test_an_ordinary_item_is_read_plainly_exactly_as_the_serializer_reads_it(raw):
    plain = plain_validated(BatchItemSerializer(), raw)

    assert plain is not None
    assert _shown(plain) == _by_the_serializer(raw)


@pytest.mark.parametrize("raw", UNUSUAL)
def test_anything_unusual_is_left_to_the_serializer(raw):
    plain = plain_validated(BatchItemSerializer(), raw)

    assert plain is None or _shown(plain) == _by_the_serializer(raw)
    if _by_the_serializer(raw) == REFUSED:
        assert plain is None


def test_a_serializer_with_rules_of_its_own_is_never_read_plainly():
    class WithFieldRule(serializers.Serializer):
        name = serializers.CharField()

        def validate_name(self, value):
            return value.lower()

    class WithObjectRule(serializers.Serializer):
        name = serializers.CharField()

        def validate(self, attrs):
            return attrs

    class WithValidator(serializers.Serializer):
        name = serializers.CharField(validators=[lambda value: None])

    for serializer in (WithFieldRule(), WithObjectRule(), WithValidator()):
        assert plain_validated(serializer, {"name": "X"}) is None
