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

UNUSUAL = [
    batch_item(10, no_of_lots="2"),
    batch_item(11, no_of_lots="many"),
    batch_item(12, no_of_lots=True),
    batch_item(13, no_of_lots=2.0),
    batch_item(14, no_of_lots=None),
    {k: v for k, v in batch_item(15).items() if k != "no_of_lots"},
    batch_item(16, entry_price="99.12345"),
    batch_item(17, entry_price="1e3"),
    batch_item(18, entry_price="NaN"),
    batch_item(19, entry_price=""),
    batch_item(20, entry_price="  "),
    batch_item(21, entry_price=99.5),
    batch_item(22, entry_price="123456789012.5"),
    batch_item(23, entry_price="+99"),
    batch_item(24, trading_symbol=None),
    batch_item(25, trading_symbol=5),
    batch_item(26, trading_symbol="X" * 101),
    batch_item(27, trading_symbol="RELIANCE\u00e9"),
    batch_item(28, trading_symbol="REL\x00IANCE"),
    batch_item(29, order_side="HOLD"),
    batch_item(30, order_side=""),
    batch_item(31, exchange_token=0),
    batch_item(32, exchange_token="2885"),
    batch_item(33, exchange_segment="MARS"),
    batch_item(34, targets="105"),
    batch_item(35, targets=[1]),
    batch_item(36, targets=[{"price": None}]),
    batch_item(37, targets=[{"percent": "50"}]),
    batch_item(38, targets=[{"price": "105", "lots": "1"}]),
    batch_item(39, targets=[{"price": "105", "percent": "1000"}]),
    batch_item(40, targets=None),
    batch_item(41, external_id="E" * 65),
    batch_item(42, client_order_id="   "),
    batch_item(43, product_type=None),
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
