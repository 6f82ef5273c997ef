"""The OpenAlgo API under the kill switch's trading lock and when an order is not sent
(issue 10 items 11 and 16 on issue 14's endpoints), driven by the `openalgo` client:

- a locked account refuses placeorder, placesmartorder (even one that only reduces),
  basketorder, splitorder and OpenAlgo's strategy webhook with 409 TRADING_LOCKED, writing
  and sending nothing; closeposition still closes (exits are not new positions); after the
  trader re-enables trading the same calls place again;
- an order that never reached the broker is answered 503 NOT_SENT (retryable, Retry-After),
  never a success: the same request sent again places it once, and a copy after that is
  the ledger's replay of that one order.
"""

from __future__ import annotations

import json

import openalgo
import pytest
from django.test import Client

from accounts.api_keys import create_api_key
from accounts.models import ApiKey
from orders.alerts.models import ReceivedAlert
from orders.alerts.services import save_webhook
from orders.brokers.paper.models import PaperOrder
from orders.brokers.sessions import connect_account
from orders.models import Order, OrderLeg
from orders.services.trading_lock import lock_trading, unlock_trading
from tests.factories import (
    hold_outbound_limit,
    make_reliance_at_100,
    make_strategy,
    make_user,
    make_xts_account,
    release_outbound_limit,
)
from tests.orders.openalgo.support import ok, positions, state

pytestmark = pytest.mark.django_db(transaction=True)


def error_body(answer: dict, status: int) -> dict:
    """The desk's error body inside the client's `HTTP <status>: <body>` answer."""
    assert answer.get("status") == "error" and answer.get("code") == status, answer
    prefix = f"HTTP {status}: "
    assert answer["message"].startswith(prefix), answer
    body = json.loads(answer["message"][len(prefix) :])
    assert body["status"] == "error", body
    return body


def locked(answer: dict) -> dict:
    body = error_body(answer, 409)
    assert body["code"] == "TRADING_LOCKED" and "kill switch" in body["message"], body
    return body


def test_every_openalgo_placement_on_a_locked_account_is_refused_and_writes_nothing(desk):
    client = desk.client()
    ok(client.placeorder(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=5))
    lock_trading(account=desk.account, actor="test")
    before = state()

    locked(client.placeorder(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=1))
    locked(client.placeorder(**desk.BRACKET))
    for size in (10, 0, -3):  # more, flat (a reduction only), the other way
        locked(
            client.placesmartorder(
                strategy="Trend",
                symbol="RELIANCE",
                action="BUY" if size > 5 else "SELL",
                exchange="NSE",
                quantity=abs(size - 5),
                position_size=size,
            )
        )
    locked(
        client.basketorder(
            strategy="Hedge",
            orders=[
                {"symbol": "RELIANCE", "exchange": "NSE", "action": "BUY", "quantity": 1},
                {"symbol": "RELIANCE", "exchange": "NSE", "action": "SELL", "quantity": 1},
            ],
        )
    )
    locked(
        client.splitorder(
            strategy="Slices",
            symbol="RELIANCE",
            action="BUY",
            exchange="NSE",
            quantity=10,
            splitsize=3,
        )
    )

    assert state() == before  # no order, leg, audit row, paper order nor strategy
    assert positions(client)[("RELIANCE", "MIS")] == 5

    # Closing is not a new position: closeposition goes out on the locked account.
    closed = ok(client.closeposition(strategy="EOD"))
    assert closed["message"] == "All Open Positions Squared Off"
    assert positions(client)[("RELIANCE", "MIS")] == 0
    [exit_order] = Order.objects.filter(pk__in=[int(i) for i in closed["orderids"]])
    assert exit_order.source == Order.Source.OPENALGO and exit_order.strategy.name == "EOD"
    assert exit_order.legs.get().role == OrderLeg.Role.EXIT

    unlock_trading(account=desk.account, actor="test")
    ok(client.placeorder(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=1))
    again = ok(
        client.placesmartorder(
            symbol="RELIANCE", action="BUY", exchange="NSE", quantity=2, position_size=3
        )
    )
    assert (again["action"], again["quantity"], again["current_position"]) == ("BUY", 2, 1)


def test_the_strategy_webhook_on_a_locked_account_is_refused_and_places_nothing(desk):
    webhook = save_webhook(
        actor="test", strategy=make_strategy(user=desk.user, name="TV"), account=desk.account
    )
    url = f"/strategy/webhook/{webhook.public_id}/{webhook.secret}"

    def alert(action: str, size: int):
        return Client().post(
            url,
            data=json.dumps({"symbol": "RELIANCE", "action": action, "position_size": str(size)}),
            content_type="application/json",
        )

    assert alert("BUY", 5).status_code == 201
    lock_trading(account=desk.account, actor="test")
    orders_before = list(Order.objects.values_list("id", "status"))
    paper_before = PaperOrder.objects.count()

    for action, size in (("BUY", 8), ("SELL", 0), ("SELL", -2)):
        refused = alert(action, size)
        assert refused.status_code == 409, refused.content
        assert refused.json()["code"] == "TRADING_LOCKED"

    assert list(Order.objects.values_list("id", "status")) == orders_before
    assert PaperOrder.objects.count() == paper_before
    outcomes = list(ReceivedAlert.objects.order_by("id").values_list("outcome", flat=True))
    assert outcomes == [ReceivedAlert.Outcome.PLACED] + [ReceivedAlert.Outcome.REFUSED] * 3
    assert positions(desk.client())[("RELIANCE", "MIS")] == 5


@pytest.fixture
def xts_desk(simulator, live_server, settings):
    """An XTS account (the simulator) with an OpenAlgo key bound to it, over live HTTP."""
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    user = make_user(username="xtsalgo")
    account = make_xts_account(simulator.base_url, user=user)
    make_reliance_at_100(instrument_id=2885)
    connect_account(account)
    key, _ = create_api_key(
        user=user, name="amibroker", scope=ApiKey.Scope.TRADE, bound_account=account
    )
    return openalgo.api(api_key=key, host=live_server.url, timeout=30), account


def test_an_openalgo_order_not_sent_is_a_retryable_503_and_the_same_request_places_once(
    xts_desk, simulator, settings
):
    client, account = xts_desk
    settings.BROKER_ORDERS_PER_SECOND = 1
    settings.BROKER_RATE_LIMIT_MAX_WAIT_SECONDS = 0

    def limit_buy(quantity: int) -> dict:
        return client.placeorder(
            symbol="RELIANCE",
            action="BUY",
            exchange="NSE",
            quantity=quantity,
            price_type="LIMIT",
            price="99",
        )

    ok(limit_buy(1))
    hold_outbound_limit(account.pk)
    refused = error_body(limit_buy(2), 503)  # over the desk's own outbound limit
    assert refused["code"] == "NOT_SENT" and refused["retryable"] is True
    assert "not sent to the broker, nothing was placed" in refused["message"]
    first_try = Order.objects.get(pk=int(refused["orderid"]))
    assert first_try.status == Order.Status.REJECTED and first_try.client_order_id is None
    assert first_try.legs.get().reject_reason.startswith("not sent: ")
    release_outbound_limit(account.pk)

    placed = ok(limit_buy(2))  # the same request again: evaluated afresh, placed now
    assert placed["orderid"] != refused["orderid"]
    replayed = ok(limit_buy(2))  # and only once
    assert replayed["orderid"] == placed["orderid"] and replayed["replayed"] is True

    sent = simulator.stats()["order_posts_by_uid"]
    placed_leg = OrderLeg.objects.get(order_id=int(placed["orderid"]))
    assert sent.get(placed_leg.unique_identifier) == 1
    assert first_try.legs.get().unique_identifier not in sent
    assert Order.objects.filter(account=account, quantity=2).count() == 2  # the refused + one
