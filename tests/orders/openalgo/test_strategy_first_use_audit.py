"""A strategy a program names for the first time is made for the trader on the spot
(accounts.services.strategy_named): that creation is on the audit trail exactly as one made
through the API is (`strategy_created`, the user's row of no account, its settings after),
by the request's actor (the OpenAlgo key); a later use of the name records nothing more.
Driven through the real callers over real HTTP: OpenAlgo's placeorder and basketorder (an
order naming a new strategy), placesmartorder (a position change) and closeposition (the
square-off)."""

from __future__ import annotations

import pytest

from accounts.models import Strategy
from orders.models import OrderEvent
from tests.factories import STRATEGY_DEFAULT_SETTINGS
from tests.orders.openalgo.support import ok, positions

pytestmark = pytest.mark.django_db(transaction=True)

DEFAULTS = STRATEGY_DEFAULT_SETTINGS


def created_rows(desk, name: str) -> list[OrderEvent]:
    return list(OrderEvent.objects.filter(kind="strategy_created", message__contains=f"“{name}”"))


def assert_created_once_by_the_key(desk, name: str) -> Strategy:
    strategy = Strategy.objects.get(user=desk.user, name=name)
    [event] = created_rows(desk, name)
    assert (event.user_id, event.account_id, event.order_id) == (desk.user.pk, None, None)
    assert event.actor == f"openalgo:key:{desk.trade_key_row.pk}"
    assert event.before is None
    assert event.after == {"id": strategy.pk, "name": name, **DEFAULTS}
    assert event.message == f"strategy “{name}” created"
    return strategy


def test_an_order_naming_a_new_strategy_records_its_creation_once(desk):
    client = desk.client()
    order = dict(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=1)
    ok(client.placeorder(strategy="Breakout", **order))
    assert_created_once_by_the_key(desk, "Breakout")

    ok(client.placeorder(strategy="Breakout", **order))  # a later use: no second row
    ok(client.placeorder(strategy="Breakout", **dict(order, quantity=2)))
    assert len(created_rows(desk, "Breakout")) == 1
    assert OrderEvent.objects.filter(kind="strategy_created").count() == 1


def test_a_basket_of_orders_naming_a_new_strategy_records_one_creation(desk):
    leg = {"symbol": "RELIANCE", "exchange": "NSE", "quantity": "1"}
    ok(
        desk.client().basketorder(
            strategy="Rebalance",
            orders=[dict(leg, action="SELL"), dict(leg, action="BUY"), dict(leg, action="BUY")],
        )
    )
    assert_created_once_by_the_key(desk, "Rebalance")
    assert OrderEvent.objects.filter(kind="strategy_created").count() == 1


def test_a_position_change_naming_a_new_strategy_records_its_creation_once(desk):
    client = desk.client()
    smart = dict(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=5)
    ok(client.placesmartorder(strategy="Swing", position_size=5, **smart))
    assert positions(client)[("RELIANCE", "MIS")] == 5
    assert_created_once_by_the_key(desk, "Swing")

    ok(client.placesmartorder(strategy="Swing", position_size=8, **dict(smart, quantity=3)))
    assert positions(client)[("RELIANCE", "MIS")] == 8
    assert len(created_rows(desk, "Swing")) == 1


def test_a_square_off_naming_a_new_strategy_records_its_creation_once(desk, settings):
    settings.OPENALGO_IDEMPOTENCY_SECONDS = 0  # the second closeposition is not a replay
    client = desk.client()
    ok(client.placeorder(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=3))
    ok(client.closeposition(strategy="EOD"))
    assert positions(client)[("RELIANCE", "MIS")] == 0
    assert_created_once_by_the_key(desk, "EOD")

    ok(client.placeorder(symbol="RELIANCE", action="SELL", exchange="NSE", quantity=2))
    ok(client.closeposition(strategy="EOD"))
    assert positions(client)[("RELIANCE", "MIS")] == 0
    assert len(created_rows(desk, "EOD")) == 1
    # OpenAlgo's client names "Python" when its caller names none: made (and recorded) once too.
    assert sorted(
        OrderEvent.objects.filter(kind="strategy_created").values_list("message", flat=True)
    ) == ["strategy “EOD” created", "strategy “Python” created"]
