"""Reading XTS answers: statuses, times, prices, balances (pure, no network)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from orders.brokers.base import (
    BrokerBalance,
)
from orders.brokers.xts.wire import (
    EXCHANGE_TZ,
    balance_from_xts,
    error_text,
    order_row_from_xts,
    parse_time,
    position_row_from_xts,
    status_from_xts,
    stream_refused_token,
)
from orders.domain.vocabulary import LegStatus
from orders.models import BrokerOrder
from orders.services.sync import store_broker_snapshots
from tests.factories import make_account, real_xts_answers


def _row(**overrides):
    row = {
        "AppOrderID": 1200001,
        "ExchangeSegment": "NSECM",
        "ExchangeInstrumentID": 2885,
        "TradingSymbol": "RELIANCE",
        "OrderSide": "Buy",
        "OrderType": "Limit",
        "ProductType": "MIS",
        "OrderPrice": 1500.5,
        "OrderStopPrice": 0,
        "OrderQuantity": 10,
        "CumulativeQuantity": 0,
        "LeavesQuantity": 10,
        "OrderAverageTradedPrice": "",
        "OrderStatus": "New",
        "CancelRejectReason": "",
        "OrderUniqueIdentifier": "A1",
        "OrderGeneratedDateTime": "26-11-2026 09:30:15",
    }
    row.update(overrides)
    return row


@pytest.mark.parametrize(
    ("raw", "filled", "ours"),
    [
        ("PendingNew", 0, LegStatus.OPEN),
        ("New", 0, LegStatus.OPEN),
        ("Replaced", 4, LegStatus.PARTIALLY_FILLED),
        ("PartiallyFilled", 4, LegStatus.PARTIALLY_FILLED),
        ("Filled", 10, LegStatus.FILLED),
        ("Cancelled", 0, LegStatus.CANCELLED),
        ("Expired", 0, LegStatus.CANCELLED),
        ("REJECTED", 0, LegStatus.REJECTED),
    ],
)
def test_statuses_map_to_ours(raw, filled, ours):
    assert status_from_xts(raw, filled_quantity=filled) == ours


def test_an_unknown_status_is_unknown_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="orders.brokers.xts.wire"):
        row = order_row_from_xts(_row(OrderStatus="Frozen"))
    assert (row.status, row.raw_status) == (LegStatus.UNKNOWN, "Frozen")
    assert "Frozen" in caplog.text


def test_sides_compare_case_insensitively():
    assert order_row_from_xts(_row(OrderSide="SELL")).side == "SELL"
    assert order_row_from_xts(_row(OrderSide="sell")).side == "SELL"


@pytest.mark.parametrize("value", ["1501.25", 1501.25, " 1501.25 "])
def test_average_price_as_string_or_number(value):
    row = order_row_from_xts(
        _row(OrderStatus="Filled", CumulativeQuantity=10, OrderAverageTradedPrice=value)
    )
    assert row.average_price == Decimal("1501.25")


def test_empty_average_price_is_none():
    assert order_row_from_xts(_row()).average_price is None


def test_the_three_time_formats():
    expected = datetime(2026, 11, 26, 9, 30, 15, tzinfo=EXCHANGE_TZ)
    assert parse_time("26-11-2026 09:30:15") == expected
    assert parse_time("2026-11-26T09:30:15") == expected
    millis = int(expected.timestamp() * 1000)
    assert parse_time(f"/Date({millis})/") == expected.astimezone(UTC)
    assert parse_time("") is None and parse_time("garbage") is None


def test_balance_is_mapped_leniently():
    nested = {
        "BalanceList": [
            {
                "limitObject": {
                    "RMSSubLimits": {
                        "cashAvailable": "5000.50",
                        "marginUtilized": "1200",
                        "netMarginAvailable": 3800.5,
                    }
                }
            }
        ]
    }
    flat = {"BalanceList": [{"CashMarginAvailable": "10", "UtilisedMargin": "2", "NetMargin": "8"}]}
    assert balance_from_xts(nested).net_margin == Decimal("3800.5")
    assert balance_from_xts(nested).cash_available == Decimal("5000.50")
    assert (balance_from_xts(flat).margin_utilized, balance_from_xts(flat).net_margin) == (
        Decimal("2"),
        Decimal("8"),
    )
    # Changed with issue 11: an absent figure is None (the stored one is kept), not 0.
    assert balance_from_xts({}) == BrokerBalance(None, None, None)


def test_position_rows_read_strings():
    row = position_row_from_xts(
        {
            "ExchangeSegment": "NSEFO",
            "ExchangeInstrumentId": "52001",
            "ProductType": "NRML",
            "Quantity": "-65",
            "OpenBuyQuantity": "0",
            "OpenSellQuantity": "65",
            "SellAveragePrice": "26150.5",
            "MTM": "-120.25",
        }
    )
    assert (row.exchange_instrument_id, row.net_qty, row.sell_qty) == (52001, -65, 65)
    assert row.mtm == Decimal("-120.25") and row.buy_avg_price is None


@pytest.mark.parametrize("raw", ["NaN", "nan", "Infinity", "-Infinity", "sNaN"])
def test_non_finite_numbers_from_the_broker_are_read_as_absent(raw):
    from orders.brokers.xts.wire import parse_decimal, parse_int

    assert parse_decimal(raw) is None
    assert parse_int(raw, default=7) == 7


def _real_order_row(**changes) -> dict:
    """The first row of a real XTS server's order book, with `changes`."""
    real = real_xts_answers()["order_book"]["result"][0]
    return {**real, **changes}


@pytest.mark.django_db
def test_a_lone_surrogate_in_a_brokers_text_is_stored_as_a_question_mark():
    """JSON may escape a lone surrogate ("\\ud800"), which has no UTF-8 form: written as it
    is, the driver fails the account's every sync. The broker's text keeps all the rest."""
    row = order_row_from_xts(
        _real_order_row(CancelRejectReason="RMS: limit \ud800 exceeded", ClientID="C\udfff1")
    )
    assert (row.reject_reason, row.client_id) == ("RMS: limit ? exceeded", "C?1")
    assert error_text({"description": "bad \ud83d request"}) == "bad ? request"
    assert error_text({"description": "ok \U0001f680 ñ"}) == "ok \U0001f680 ñ"  # unchanged

    account = make_account()
    store_broker_snapshots(
        account=account, order_book=[row], trades=None, positions=None, balance=None
    )
    stored = BrokerOrder.objects.get(account=account)
    assert (stored.cancel_reject_reason, stored.client_id) == ("RMS: limit ? exceeded", "C?1")


@pytest.mark.parametrize(
    ("data", "the_token"),
    [
        ("Invalid Token", True),  # what XTS answers a dead token's stream
        ({"type": "error", "code": "e-session-0007", "description": "Invalid Token"}, True),
        ({"code": "e-token-0002", "description": "Please Provide token to Authenticate"}, True),
        ({"message": "jwt expired"}, True),
        ("User already connected", False),
        ({"type": "error", "code": "e-apirl-0004", "description": "Too many requests"}, False),
        # a code decides, never the wording beside it
        ({"type": "error", "code": "e-apirl-0004", "description": "token rate limit"}, False),
        ({"code": "e-session-0001", "description": "server busy"}, True),
        ("Internal Server Error", False),
        (None, False),
        (["Invalid Token"], False),
    ],
)
def test_a_stream_refusal_ends_the_session_only_when_it_refuses_the_token(data, the_token):
    assert stream_refused_token(data) is the_token
