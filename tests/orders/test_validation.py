"""Every validation rule of SPEC 5: a 400 naming the field, and nothing written."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Broker
from orders.models import DailyCounter, Order, OrderEvent, OrderLeg
from tests.factories import (
    bracket_order_body,
    make_account,
    make_instrument,
    make_strategy,
    make_user,
    single_order_body,
)

D = Decimal


def _nothing_written():
    assert Order.objects.count() == 0
    assert OrderLeg.objects.count() == 0
    assert OrderEvent.objects.count() == 0
    assert DailyCounter.objects.count() == 0


def _assert_refused_naming(response, field: str) -> None:
    """A 400 that names `field`, and nothing written."""
    assert response.status_code == 400, response.json()
    assert field in response.json()["details"], response.json()
    _nothing_written()


def _single(account, **overrides):
    body = single_order_body(account, **{"product_type": "MIS", **overrides})
    return {k: v for k, v in body.items() if v is not None}


SINGLE_CASES = [
    ("unknown symbol", {"symbol": "NOPE"}, "symbol"),
    (
        "unknown instrument id",
        {"symbol": "", "exchange_instrument_id": 999999},
        "exchange_instrument_id",
    ),
    ("no instrument at all", {"symbol": ""}, "symbol"),
    ("quantity zero", {"order_quantity": 0}, "order_quantity"),
    ("quantity negative", {"order_quantity": -5}, "order_quantity"),
    ("quantity not a lot multiple", {"symbol": "NIFTYFUT", "order_quantity": 75}, "order_quantity"),
    ("quantity over freeze", {"order_quantity": 10001}, "order_quantity"),
    ("price negative", {"limit_price": "-1.00"}, "limit_price"),
    ("price zero", {"limit_price": "0"}, "limit_price"),
    ("price off the tick", {"limit_price": "99.03"}, "limit_price"),
    (
        "price above the band",
        {"symbol": "NIFTYFUT", "order_quantity": 50, "limit_price": "151.00"},
        "limit_price",
    ),
    (
        "price below the band",
        {"symbol": "NIFTYFUT", "order_quantity": 50, "limit_price": "49.95"},
        "limit_price",
    ),
    ("price with five decimals", {"limit_price": "99.00001"}, "limit_price"),
    ("price not a number", {"limit_price": "abc"}, "limit_price"),
    ("limit order without limit", {"limit_price": None}, "limit_price"),
    ("market order with a limit", {"order_type": "MARKET"}, "limit_price"),
    ("stop-limit without stop", {"order_type": "STOPLIMIT"}, "stop_price"),
    (
        "stop-market with a limit",
        {"order_type": "STOPMARKET", "stop_price": "101.00"},
        "limit_price",
    ),
    ("limit order with a stop", {"stop_price": "98.00"}, "stop_price"),
    (
        "BUY stop-limit limit below stop",
        {"order_type": "STOPLIMIT", "limit_price": "100.00", "stop_price": "101.00"},
        "limit_price",
    ),
    (
        "SELL stop-limit limit above stop",
        {
            "order_side": "SELL",
            "order_type": "STOPLIMIT",
            "limit_price": "99.00",
            "stop_price": "98.00",
        },
        "limit_price",
    ),
    ("bad side", {"order_side": "HOLD"}, "order_side"),
    ("bad order type", {"order_type": "ICEBERG"}, "order_type"),
    ("bad product", {"product_type": "XYZ"}, "product_type"),
    ("bad segment", {"exchange_segment": "NYSE"}, "exchange_segment"),
    ("unknown strategy", {"strategy_name": "ghost"}, "strategy_name"),
    ("missing account", {"account_id": None}, "account_id"),
    ("missing quantity", {"order_quantity": None}, "order_quantity"),
]


@pytest.fixture
def instruments(instrument, future):
    """RELIANCE and NIFTYFUT, both at 100 (tests/orders/conftest.py)."""
    return instrument, future


def test_a_symbol_on_two_segments_needs_the_segment(client, account, instruments):
    make_instrument(symbol="RELIANCE", segment="BSECM")
    _assert_refused_naming(
        client.post("/api/orders", _single(account), format="json"), "exchange_segment"
    )


def _algo(account, **overrides):
    body = bracket_order_body(account, **({"order_side": "BUY"} | overrides))
    return {k: v for k, v in body.items() if v is not None}


BRACKET_CASES = [
    ("BUY stop-loss at the entry", {"sl_price": "99.00"}, "sl_price"),
    ("BUY stop-loss above the entry", {"sl_price": "100.00"}, "sl_price"),
    ("BUY target below the entry", {"tp_price": "98.00"}, "tp_price"),
    (
        "SELL stop-loss below the entry",
        {"order_side": "SELL", "sl_price": "98.00", "tp_price": "95.00"},
        "sl_price",
    ),
    (
        "SELL target above the entry",
        {"order_side": "SELL", "sl_price": "103.00", "tp_price": "101.00"},
        "tp_price",
    ),
    ("no lots", {"no_of_lots": 0}, "no_of_lots"),
    (
        "lots over the freeze quantity",
        {"trading_symbol": "NIFTYFUT", "no_of_lots": 37},
        "no_of_lots",
    ),
    ("BUY entry limit below its stop", {"entry_stop_price": "99.50"}, "entry_price"),
    ("BUY stop-loss limit above its trigger", {"sl_stop_price": "94.50"}, "sl_price"),
    ("missing stop-loss", {"sl_price": None}, "sl_price"),
    ("missing entry price", {"entry_price": None}, "entry_price"),
    ("target off the tick", {"tp_price": "105.01"}, "tp_price"),
    ("unknown exchange token", {"trading_symbol": "", "exchange_token": 424242}, "exchange_token"),
]


def _rule_cases(url: str, body, cases: list) -> list:
    """`cases` (name, overrides, field) as requests to `url`: the body built by `body` from
    the account and the overrides; each case's id its endpoint and name."""
    return [
        pytest.param(url, body, overrides, field, id=f"{url} {name}")
        for name, overrides, field in cases
    ]


@pytest.mark.parametrize(
    ("url", "body", "overrides", "field"),
    _rule_cases("/api/orders", _single, SINGLE_CASES)
    + _rule_cases("/api/algo-orders", _algo, BRACKET_CASES),
)
def test_every_rule_answers_400_naming_the_field_and_writes_nothing(
    client, account, instruments, url, body, overrides, field
):
    response = client.post(url, body(account, **overrides), format="json")
    _assert_refused_naming(response, field)
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_a_valid_sell_bracket_is_accepted(client, account, instruments):
    body = _algo(
        account, order_side="SELL", sl_price="103.00", tp_price="95.00", entry_price="101.00"
    )
    response = client.post("/api/algo-orders", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["order"]["order_side"] == "SELL"


def test_another_users_account_is_404_and_nothing_is_written(client, instruments):
    stranger_account = make_account(user=make_user())
    response = client.post("/api/orders", _single(stranger_account), format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    _nothing_written()


def test_an_inactive_account_is_404(client, trader, instruments):
    account = make_account(user=trader, is_active=False)
    response = client.post("/api/orders", _single(account), format="json")
    assert response.status_code == 404
    _nothing_written()


def test_a_live_broker_outside_the_trading_window_is_market_closed(
    client, trader, instruments, settings
):
    settings.TRADING_WINDOW_ALWAYS_OPEN = False
    settings.TRADING_WEEKDAYS = []  # no trading day at all: the window is shut
    account = make_account(user=trader, broker=Broker.IIFL)
    response = client.post("/api/orders", _single(account), format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "MARKET_CLOSED"
    _nothing_written()


def test_the_paper_broker_trades_outside_the_window(client, account, instruments, settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = False
    settings.TRADING_WEEKDAYS = []
    response = client.post("/api/orders", _single(account), format="json")
    assert response.status_code == 201


def test_a_symbol_in_lower_case_names_the_same_instrument_on_every_database(
    client, account, instruments
):
    """The lookup asks for the upper-case symbol: SQLite (the embedded default) compares
    exactly, so asking for "reliance" there would find nothing, while MariaDB found it."""
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/api/orders", _single(account, symbol=" reliance "), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["order"]["symbol"] == "RELIANCE"
    lookups = [q["sql"] for q in queries.captured_queries if "trading_symbol" in q["sql"]]
    assert lookups and all("reliance" not in sql for sql in lookups), lookups


def test_a_known_strategy_is_attached(client, trader, account, instruments):
    make_strategy(user=trader, name="momentum")
    response = client.post("/api/orders", _single(account, strategy_name="momentum"), format="json")
    assert response.status_code == 201
    assert response.json()["order"]["strategy"] == "momentum"


# ---- every error in one round (issue 13) ---------------------------------------------------


def test_a_missing_quantity_does_not_hide_the_price_errors(client, account, instruments):
    body = _single(
        account, symbol="NIFTYFUT", order_quantity=None, limit_price="151.03", stop_price="140"
    )
    response = client.post("/api/orders", body, format="json")
    assert response.status_code == 400
    envelope = response.json()
    assert envelope["code"] == "VALIDATION_ERROR"
    details = envelope["details"]
    assert details["order_quantity"] == ["This field is required."]
    assert details["limit_price"] == [
        "must be a multiple of the tick size 0.05",
        "is above the price band 150",
    ]
    assert details["stop_price"] == ["must be empty for a LIMIT order"]
    assert envelope["error"] == "order_quantity: This field is required."
    _nothing_written()


def test_an_unparseable_field_is_reported_once_beside_the_rule_errors(client, account, instruments):
    body = _single(account, order_quantity="ten", order_side="SIDEWAYS", limit_price="99.03")
    details = client.post("/api/orders", body, format="json").json()["details"]
    assert len(details["order_quantity"]) == 1
    assert len(details["order_side"]) == 1
    assert details["limit_price"] == ["must be a multiple of the tick size 0.05"]
    _nothing_written()


def test_a_bracket_price_off_the_tick_is_still_checked_against_the_other_prices(
    client, account, instruments
):
    body = _algo(account, entry_price="100.03", sl_price="101.00", tp_price="99.00")
    details = client.post("/api/algo-orders", body, format="json").json()["details"]
    assert details["entry_price"] == ["must be a multiple of the tick size 0.05"]
    assert details["sl_price"] == ["must be below the entry price for a BUY bracket"]
    assert details["tp_price"] == ["must be above the entry price for a BUY bracket"]
    _nothing_written()


def test_a_bracket_missing_its_lots_still_reports_its_prices(client, account, instruments):
    body = _algo(account, trading_symbol="NIFTYFUT", no_of_lots=None, entry_price="160.00")
    details = client.post("/api/algo-orders", body, format="json").json()["details"]
    assert details["no_of_lots"] == ["This field is required."]
    assert details["entry_price"] == ["is above the price band 150"]
    _nothing_written()
