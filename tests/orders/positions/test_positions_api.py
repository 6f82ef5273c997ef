"""GET /api/positions: net quantity, average, LTP and an MTM that moves with every price
tick; paper and live never added together; another user's account a 404."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import Broker
from orders.models import BrokerPosition
from tests.factories import (
    api_client_for,
    buy_and_sync,
    make_account,
    make_instrument,
    make_user,
    record_price,
)

D = Decimal
pytestmark = pytest.mark.django_db


def test_a_position_shows_quantity_average_ltp_and_mtm_that_follows_the_price(
    client, account, instrument
):
    buy_and_sync(account, instrument, 10)
    body = client.get("/api/positions").json()
    [only] = body["accounts"]
    [row] = only["positions"]
    assert (row["trading_symbol"], row["net_qty"], row["product_type"]) == ("TATAPOS", 10, "MIS")
    assert D(row["average_price"]) == D("100")
    assert D(row["mtm"]) == D("0.00")

    record_price(instrument, "104.50")  # no sync: only the price moved
    body = client.get(f"/api/positions?account_id={account.pk}").json()
    row = body["accounts"][0]["positions"][0]
    assert D(row["ltp"]) == D("104.50")
    assert D(row["mtm"]) == D("45.00")  # 10 x (104.50 - 100)
    assert D(body["accounts"][0]["mtm"]) == D("45.00")
    assert D(body["totals"]["paper"]) == D("45.00")
    assert body["totals"]["live"] is None


def test_paper_and_live_money_are_totalled_apart(trader, client, instrument):
    paper = make_account(user=trader, name="Paper")
    live = make_account(user=trader, name="Live", broker=Broker.IIFL)
    for account, amount in ((paper, "1000"), (live, "2000")):
        BrokerPosition.objects.create(
            account=account,
            exchange_segment=instrument.exchange_segment,
            exchange_instrument_id=instrument.exchange_instrument_id,
            product_type="MIS",
            net_qty=10,
            buy_qty=10,
            sell_qty=0,
            buy_avg_price=D(amount) / 10,
            buy_amount=D(amount),
            sell_amount=D("0"),
        )
    body = client.get("/api/positions").json()
    # LTP 100: paper 10 x 100 - 1000 = 0; live 10 x 100 - 2000 = -1000.
    assert D(body["totals"]["paper"]) == D("0")
    assert D(body["totals"]["live"]) == D("-1000")
    assert {a["money"] for a in body["accounts"]} == {"paper", "live"}


def test_another_users_account_is_a_404_and_a_bad_filter_a_400(client, instrument):
    theirs = make_account(user=make_user())
    assert client.get(f"/api/positions?account_id={theirs.pk}").status_code == 404
    answer = client.get("/api/positions?account_id=abc")
    assert answer.status_code == 400
    assert answer.json()["code"] == "VALIDATION_ERROR"
    assert "account_id" in answer.json()["details"]
    assert client.get("/api/positions?account_id=0").status_code == 400


def test_positions_need_authentication(db):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/positions").status_code == 401


def test_only_the_owners_positions_are_listed(account, instrument):
    buy_and_sync(account, instrument, 3)
    stranger = api_client_for(make_user())
    assert stranger.get("/api/positions").json()["accounts"] == []


def test_a_position_whose_quantity_the_broker_sent_unreadable_keeps_the_brokers_mtm(
    client, account, instrument
):
    BrokerPosition.objects.create(
        account=account,
        exchange_segment=instrument.exchange_segment,
        exchange_instrument_id=instrument.exchange_instrument_id,
        product_type="MIS",
        net_qty=None,
        mtm=D("12.34"),
    )
    row = client.get("/api/positions").json()["accounts"][0]["positions"][0]
    assert row["net_qty"] is None
    assert D(row["mtm"]) == D("12.34")


def test_another_instrument_leaves_the_mtm_alone(client, account, instrument):
    buy_and_sync(account, instrument, 2)
    other = make_instrument(symbol="OTHERPOS")
    record_price(other, "50")
    row = client.get("/api/positions").json()["accounts"][0]["positions"][0]
    assert D(row["mtm"]) == D("0.00")
