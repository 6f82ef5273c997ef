"""Instruments and fair prices over the API: search, reads, bulk writes and who may write."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from orders.brokers.paper import book as paper_book
from orders.brokers.paper import exchange as paper_exchange
from orders.brokers.paper.models import PaperOrder
from orders.domain.vocabulary import LegStatus
from orders.models import FairPrice
from tests.factories import (
    api_client_for,
    make_account,
    make_fair_price,
    make_instrument,
    make_user,
    order_request,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def reliance():
    inst = make_instrument(symbol="RELIANCE", instrument_id=2885)
    make_fair_price(inst, "1520.40", spread="0.10")
    return inst


@pytest.fixture
def trader_api():
    return api_client_for(make_user())


@pytest.fixture
def staff_api():
    return api_client_for(make_user(is_staff=True))


def _row(instrument, buy="1521.00", sell="1520.00", **extra):
    return {"instrument_id": instrument.pk, "buy_fair_price": buy, "sell_fair_price": sell, **extra}


def test_instrument_search_returns_rules_and_the_current_fair_price(trader_api, reliance):
    make_instrument(symbol="TCS")
    body = trader_api.get("/api/instruments", {"search": "relia"}).json()
    assert body["total"] == 1
    (found,) = body["instruments"]
    assert (found["trading_symbol"], found["lot_size"], found["tick_size"]) == (
        "RELIANCE",
        1,
        "0.0500",
    )
    assert found["fair_price"]["avg_fair_price"] == "1520.4000"
    assert {"freeze_quantity", "price_band_low", "price_band_high"} <= found.keys()


def test_instrument_list_is_paginated(trader_api):
    for n in range(3):
        make_instrument(symbol=f"PAGE{n}")
    body = trader_api.get("/api/instruments", {"limit": 2, "offset": 1}).json()
    assert (body["total"], len(body["instruments"]), body["offset"]) == (3, 2, 1)


def test_fair_prices_filter_by_symbols(trader_api, reliance):
    other = make_instrument(symbol="INFY")
    make_fair_price(other, "1545.00")
    body = trader_api.get("/api/fair-prices", {"symbols": "INFY"}).json()
    assert [row["trading_symbol"] for row in body["fair_prices"]] == ["INFY"]


@pytest.mark.parametrize(
    "ids",
    [
        "1,x",
        # A digit to str.isdigit but no number to int(): it was a ValueError, a 500.
        "1,\u00b2",
        "\u2460",
    ],
)
def test_fair_prices_bad_filter_is_a_400(trader_api, ids):
    response = trader_api.get("/api/fair-prices", {"instrument_ids": ids})
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"


def test_staff_writes_fair_prices_in_bulk(staff_api, reliance):
    response = staff_api.post(
        "/api/fair-prices", {"prices": [_row(reliance, last_traded_price="1520.50")]}, format="json"
    )
    assert response.status_code == 200, response.content
    fair = FairPrice.objects.get(instrument=reliance)
    assert (fair.buy_fair_price, fair.avg_fair_price, fair.last_traded_price) == (
        Decimal("1521.0000"),
        Decimal("1520.5000"),
        Decimal("1520.5000"),
    )


def test_a_non_staff_trader_may_not_write_fair_prices(trader_api, reliance):
    response = trader_api.post("/api/fair-prices", {"prices": [_row(reliance)]}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "PERMISSION_DENIED"
    assert FairPrice.objects.get(instrument=reliance).buy_fair_price == Decimal("1520.4500")


def test_the_feed_token_may_write_fair_prices(reliance, settings):
    settings.FAIR_PRICE_FEED_TOKEN = "feed-secret-1"
    client = APIClient()
    ok = client.post(
        "/api/fair-prices",
        [_row(reliance)],
        format="json",
        HTTP_X_FEED_TOKEN="feed-secret-1",
    )
    wrong = client.post(
        "/api/fair-prices", [_row(reliance)], format="json", HTTP_X_FEED_TOKEN="guess"
    )
    assert ok.status_code == 200 and FairPrice.objects.get(instrument=reliance).source == "feed"
    assert wrong.status_code == 403 and wrong.json()["code"] == "PERMISSION_DENIED"


def test_an_anonymous_write_is_refused(reliance):
    response = APIClient().post("/api/fair-prices", [_row(reliance)], format="json")
    assert response.status_code in (401, 403)


@pytest.mark.parametrize(
    ("row_changes", "field"),
    [
        ({"buy": "-1"}, "buy_fair_price"),
        ({"buy": "1519.00", "sell": "1520.00"}, "buy_fair_price"),
        ({"buy": "abc"}, "buy_fair_price"),
        ({"avg_fair_price": "1600"}, "avg_fair_price"),
    ],
)
def test_invalid_rows_are_a_400_that_writes_nothing(staff_api, reliance, row_changes, field):
    extra = {k: v for k, v in row_changes.items() if k not in ("buy", "sell")}
    row = _row(
        reliance,
        buy=row_changes.get("buy", "1521.00"),
        sell=row_changes.get("sell", "1520.00"),
        **extra,
    )
    good = _row(make_instrument(symbol="GOOD"))
    response = staff_api.post("/api/fair-prices", {"prices": [good, row]}, format="json")
    body = response.json()
    assert response.status_code == 400 and body["code"] == "VALIDATION_ERROR"
    assert field in str(body["details"])
    assert not FairPrice.objects.filter(instrument_id=good["instrument_id"]).exists()


def test_an_unknown_instrument_is_a_400_naming_the_row(staff_api, reliance):
    rows = [_row(reliance), {"symbol": "NOPE", "buy_fair_price": "2", "sell_fair_price": "1"}]
    body = staff_api.post("/api/fair-prices", rows, format="json").json()
    assert body["code"] == "VALIDATION_ERROR" and body["details"]["prices"]["1"]
    assert FairPrice.objects.get(instrument=reliance).buy_fair_price == Decimal("1520.4500")


def test_more_than_1000_rows_are_refused(staff_api, reliance):
    rows = [_row(reliance)] * 1001
    response = staff_api.post("/api/fair-prices", rows, format="json")
    assert response.status_code == 400


def test_a_fair_price_write_fills_resting_paper_orders(
    staff_api, reliance, django_capture_on_commit_callbacks
):
    book = paper_book.book_for_account(make_account().pk)
    order = paper_exchange.submit_order(
        book=book,
        request=order_request(reliance, "API1", order_type="LIMIT", limit=Decimal("1500.00")),
    )
    with django_capture_on_commit_callbacks(execute=True):
        staff_api.post(
            "/api/fair-prices", [_row(reliance, buy="1499.00", sell="1498.90")], format="json"
        )
    assert PaperOrder.objects.get(pk=order.pk).status == LegStatus.FILLED
