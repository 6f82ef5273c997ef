"""OpenAlgo request bodies read into the desk's terms (pure: no database)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.openalgo.fields import FieldReader, OpenAlgoInvalid, read_order, read_order_id


def _order(body, **options):
    reader = FieldReader(body)
    order = read_order(reader, **options)
    reader.raise_errors()
    return order


def _errors(body, **options) -> dict:
    with pytest.raises(OpenAlgoInvalid) as caught:
        _order(body, **options)
    return caught.value.details


BASE = {"symbol": "RELIANCE", "exchange": "NSE", "action": "BUY", "quantity": "1"}


def test_openalgos_strings_and_zeros_read_as_the_desks_values():
    order = _order({**BASE, "pricetype": "LIMIT", "price": "16.5", "trigger_price": "0"})
    assert order.order_type == "LIMIT" and order.limit_price == Decimal("16.5")
    assert order.stop_price is None and order.product_type == "MIS" and order.quantity == 1


def test_a_market_order_takes_a_price_as_a_reference_only():
    order = _order({**BASE, "price": "100"})
    assert order.order_type == "MARKET" and order.limit_price is None


@pytest.mark.parametrize(
    "extra,field",
    [
        ({"pricetype": "LIMIT"}, "price"),
        ({"pricetype": "SL", "price": "10"}, "trigger_price"),
        ({"pricetype": "SL-M"}, "trigger_price"),
        ({"pricetype": "LIMIT", "price": "10", "trigger_price": "9"}, "trigger_price"),
        ({"quantity": "1.5"}, "quantity"),
        ({"quantity": "0"}, "quantity"),
        ({"quantity": "lots"}, "quantity"),
        ({"price": "-1", "pricetype": "LIMIT"}, "price"),
        ({"disclosed_quantity": "5"}, "disclosed_quantity"),
        ({"trailing_sl": "2", "pricetype": "LIMIT", "price": "10", "stoploss": "9"}, "trailing_sl"),
        ({"target": "120", "pricetype": "LIMIT", "price": "100"}, "stoploss"),
        ({"stoploss": "90"}, "pricetype"),
        ({"pricetype": "BRACKET"}, "pricetype"),
        ({"product": "BO"}, "product"),
        ({"action": "SHORT"}, "action"),
        ({"symbol": ""}, "symbol"),
    ],
)
def test_a_field_that_cannot_be_honoured_is_named(extra, field):
    assert field in _errors({**BASE, **extra})


def test_stoploss_and_target_make_a_bracket_only_where_taken():
    order = _order(
        {**BASE, "pricetype": "LIMIT", "price": "100", "stoploss": "95", "target": "110"}
    )
    assert order.is_bracket and order.stop_loss == Decimal("95") and order.target == Decimal("110")
    assert "stoploss" in _errors({**BASE, "stoploss": "95"}, brackets=False)


def test_every_broken_field_is_named_at_once_with_the_item_prefix():
    reader = FieldReader({"action": "HOLD", "quantity": "-1"}, prefix="orders[2].")
    read_order(reader)
    assert {"orders[2].symbol", "orders[2].action", "orders[2].quantity"} <= set(reader.errors)


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1" * 19, ""])
def test_an_order_id_that_is_not_the_desks_is_named(value):
    reader = FieldReader({"orderid": value})
    assert read_order_id(reader) is None and "orderid" in reader.errors
