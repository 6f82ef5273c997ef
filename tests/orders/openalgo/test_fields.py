"""OpenAlgo request bodies read into the desk's terms (pure: no database)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from orders.openalgo.fields import (
    FieldReader,
    OpenAlgoInvalid,
    finite_decimal,
    read_order,
    read_order_id,
    read_strategy,
)
from tests.factories import UNSTORABLE_TEXT


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


# "²" is a digit to str.isdigit but not to int(): orderstatus, cancelorder and modifyorder
# answered 500; "١٢٣" (Arabic-Indic digits) named order 123.
@pytest.mark.parametrize("value", ["abc", "0", "-3", "1" * 19, "", "²", "1\u2460", "١٢٣"])
def test_an_order_id_that_is_not_the_desks_is_named(value):
    reader = FieldReader({"orderid": value})
    assert read_order_id(reader) is None and "orderid" in reader.errors


@pytest.mark.parametrize("name", ["symbol", "exchange"])
@pytest.mark.parametrize("value,message", UNSTORABLE_TEXT)
def test_text_the_database_cannot_take_is_refused_naming_the_field(name, value, message):
    """A lone surrogate has no UTF-8 form (the driver cannot send it: a 500 otherwise); NUL
    is refused as the REST API refuses it."""
    assert _errors({**BASE, name: value})[name] == [message]


def test_a_strategy_name_the_database_cannot_take_is_refused():
    reader = FieldReader({"strategy": "\udfff trend"})
    assert read_strategy(reader) == ""
    assert reader.errors == {"strategy": ["must not contain surrogate characters"]}


@pytest.mark.parametrize("name", ["price", "trigger_price", "stoploss", "target"])
def test_a_number_past_decimals_range_is_not_a_number(name):
    """1e999999999 is finite, but its first arithmetic (the price check's abs) overflows:
    refused here, as any other text that is not a number."""
    body = {**BASE, "pricetype": "SL", "price": "100", "trigger_price": "99", "stoploss": "95"}
    assert _errors({**body, name: "1e999999999"})[name] == ["'1e999999999' is not a number"]


@pytest.mark.parametrize("value", ["1e500000", "-1e500000", "9e999999"])
def test_a_huge_whole_number_is_refused_by_its_size_before_it_is_converted(value):
    """int() of 1e500000 takes seconds (of 1e999999, half a minute): one request would hold
    a worker."""
    started = time.monotonic()
    assert _errors({**BASE, "quantity": value})["quantity"] == [
        "must be at most 2147483647 in size"
    ]
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("text", ["1,5", "2450,5", "1,2,5,0", "10,00", "1,2345", ",5", "5,"])
def test_a_comma_that_groups_no_thousands_is_not_a_number(text):
    # Every comma was dropped: a decimal comma's "1,5" lots read as 15, "2450,5" as 24505.
    # Thousands as written in the West and in India still read.
    assert finite_decimal(text) is None
    assert finite_decimal("1,250") == 1250 and finite_decimal("2,450.50") == Decimal("2450.50")
    assert finite_decimal("1,25,000") == 125000 and finite_decimal("-1,000,000") == -1000000
