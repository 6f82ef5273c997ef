"""Reading alerts (pure): lenient about case, aliases and numbers as strings; strict about
what the alert means."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.alerts.parsing import AlertInvalid, parse_alert, parse_openalgo_strategy_alert
from tests.factories import UNSTORABLE_TEXT


def _invalid(body, parser=parse_alert) -> dict:
    with pytest.raises(AlertInvalid) as caught:
        parser(body)
    return caught.value.details


def test_a_tradingview_style_alert_with_strings_and_odd_case_reads_as_a_limit_order():
    order = parse_alert(
        {"Symbol": " RELIANCE ", "ACTION": "buy", "Quantity": "10", "Price": "2,450.50"}
    )
    assert order.symbol == "RELIANCE" and order.side == "BUY"
    assert order.quantity == 10 and order.lots is None
    assert order.order_type == "LIMIT" and order.price == Decimal("2450.50")
    assert not order.is_bracket


def test_no_price_means_a_market_order_and_a_reference_price_with_market_is_not_a_limit():
    assert parse_alert({"symbol": "X", "action": "SELL", "lots": 2}).order_type == "MARKET"
    order = parse_alert(
        {"symbol": "X", "action": "SELL", "qty": 5, "order_type": "mkt", "price": 101}
    )
    assert order.order_type == "MARKET" and order.price is None


def test_stop_loss_and_targets_make_a_bracket():
    order = parse_alert(
        {
            "ticker": "NIFTY24DECFUT",
            "exchange": "nfo",
            "side": "BUY",
            "lots": "1",
            "price": 24000,
            "Stop-Loss": "23900",
            "targets": [24100, "24200"],
            "id": 7,
        }
    )
    assert order.is_bracket and order.exchange_segment == "NSEFO"
    assert order.stop_loss == Decimal("23900")
    assert order.targets == (Decimal("24100"), Decimal("24200"))
    assert order.alert_id == "7"


def test_order_types_in_broker_words():
    sl = parse_alert(
        {
            "symbol": "X",
            "action": "BUY",
            "quantity": 1,
            "pricetype": "SL",
            "price": 10,
            "trigger_price": 9.5,
        }
    )
    assert sl.order_type == "STOPLIMIT" and sl.trigger_price == Decimal("9.5")
    slm = parse_alert(
        {"symbol": "X", "action": "SELL", "quantity": 1, "order_type": "SL-M", "trigger_price": "9"}
    )
    assert slm.order_type == "STOPMARKET" and slm.price is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "BUY", "quantity": 1}, "symbol"),
        ({"symbol": "X", "quantity": 1}, "action"),
        ({"symbol": "X", "action": "HOLD", "quantity": 1}, "action"),
        ({"symbol": "X", "action": "BUY"}, "quantity"),
        ({"symbol": "X", "action": "BUY", "quantity": "1.5"}, "quantity"),
        ({"symbol": "X", "action": "BUY", "quantity": -3}, "quantity"),
        ({"symbol": "X", "action": "BUY", "quantity": True}, "quantity"),
        # A decimal comma: "1,5" lots were read as 15, a price of "2450,5" as 24505.
        ({"symbol": "X", "action": "BUY", "lots": "1,5"}, "lots"),
        ({"symbol": "X", "action": "BUY", "quantity": 1, "price": "2450,5"}, "price"),
        ({"symbol": "X", "action": "BUY", "quantity": 1, "lots": 1}, "quantity"),
        ({"symbol": "X", "action": "BUY", "quantity": 1, "price": "abc"}, "price"),
        ({"symbol": "X", "action": "BUY", "quantity": 1, "price": "NaN"}, "price"),
        ({"symbol": "X", "action": "BUY", "quantity": 1, "order_type": "LIMIT"}, "price"),
        ({"symbol": "X", "action": "BUY", "quantity": 1, "order_type": "ICEBERG"}, "order_type"),
        ({"symbol": "X", "action": "BUY", "quantity": 1, "price": 10, "target": 12}, "target"),
        ({"symbol": "X", "action": "BUY", "quantity": 1, "stop_loss": 9}, "order_type"),
        ({"symbol": "X", "action": "BUY", "quantity": 1, "exchange": "NYSE"}, "exchange"),
        ({"symbol": "X", "action": "BUY", "quantity": 1, "product": "MARGIN"}, "product"),
        ({"symbol": "X", "action": "BUY", "quantity": 1, "id": "x" * 65}, "id"),
        ({"symbol": "X", "ticker": "Y", "action": "BUY", "quantity": 1}, "symbol"),
        (
            {"symbol": "X", "action": "BUY", "quantity": 1, "order_type": "SL", "price": 10},
            "trigger_price",
        ),
    ],
)
def test_alerts_that_mean_nothing_or_two_things_are_refused_naming_the_field(body, field):
    assert field in _invalid(body)


def test_every_broken_field_is_named_in_one_answer():
    details = _invalid({"action": "HOLD", "quantity": "0", "price": "-1"})
    assert {"symbol", "action", "quantity", "price"} <= set(details)


def test_the_same_field_twice_with_the_same_value_is_fine():
    assert (
        parse_alert(
            {"symbol": "X", "ticker": "X", "action": "BUY", "qty": "3", "quantity": 3}
        ).quantity
        == 3
    )


@pytest.mark.parametrize(
    "action,size,target",
    [("BUY", "5", 5), ("BUY", 0, 0), ("SELL", "0", 0), ("SELL", "-5", -5), ("SELL", "5", -5)],
)
def test_openalgo_position_size_is_the_target_position(action, size, target):
    # OpenAlgo's BOTH mode: BUY 5 long 5, SELL 0 flat, SELL -5 (or the client's SELL 5) short.
    order = parse_openalgo_strategy_alert(
        {"symbol": "SBIN", "action": action, "position_size": size}
    )
    assert order.target_position == target and order.quantity is None and order.lots is None
    assert order.order_type == "MARKET"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"symbol": "SBIN", "action": "BUY", "position_size": "-2"}, "position_size"),
        ({"symbol": "SBIN", "action": "BUY", "position_size": "2.5"}, "position_size"),
        ({"symbol": "SBIN", "action": "BUY", "position_size": "2", "quantity": "2"}, "quantity"),
        ({"symbol": "SBIN", "action": "BUY", "position_size": "2", "stoploss": "90"}, "stop_loss"),
        ({"symbol": "SBIN", "action": "HOLD", "position_size": "2"}, "action"),
    ],
)
def test_openalgo_alerts_that_could_mean_two_things_are_refused(body, field):
    assert field in _invalid(body, parse_openalgo_strategy_alert)


def test_openalgo_without_position_size_names_it():
    details = _invalid({"symbol": "SBIN", "action": "BUY"}, parse_openalgo_strategy_alert)
    assert "is required" in details["position_size"][0]


@pytest.mark.parametrize("name", ["symbol", "id"])
@pytest.mark.parametrize("value,message", UNSTORABLE_TEXT)
def test_text_the_database_cannot_take_is_refused_naming_the_field(name, value, message):
    body = {"symbol": "X", "action": "BUY", "quantity": "1", name: value}
    assert _invalid(body)[name] == [message]
    assert _invalid({**body, "position_size": "1"}, parse_openalgo_strategy_alert)[name] == [
        message
    ]


@pytest.mark.parametrize("name", ["price", "stop_loss", "target"])
def test_a_price_past_decimals_range_is_not_a_number(name):
    """Finite, but its first arithmetic (the price check's abs) would overflow: a 500."""
    body = {"symbol": "X", "action": "BUY", "quantity": "1", "price": "100", "stop_loss": "95"}
    assert _invalid({**body, name: "1e999999999"})[name] == [
        "'1e999999999' is not a positive number"
    ]


@pytest.mark.parametrize("size", ["1e999999999", "-1e999999999"])
def test_an_openalgo_position_size_past_decimals_range_is_not_a_whole_number(size):
    body = {"symbol": "X", "action": "BUY", "position_size": size}
    assert _invalid(body, parse_openalgo_strategy_alert) == {
        "position_size": ["is not a whole number (the signed position to reach)"]
    }
