"""A bracket's whole life on the paper broker, driven by monitoring cycles, watched by a real
WebSocket client on a daphne process (SPEC 5, 7, 8, 9)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from accounts.services import create_auth_session
from monitoring.services import run_user_cycle
from orders.models import BrokerTrade, Order, OrderLeg
from tests.factories import (
    make_desk,
    place_bracket_near_1000,
    set_price_and_match,
)
from tests.servers import WsClient

pytestmark = pytest.mark.slow


def _legs(order, role):
    return list(order.legs.filter(role=role).order_by("id"))


def test_bracket_partial_fill_protection_target_and_pnl(daphne_server, settings):
    user, account, instrument = make_desk(symbol="HDFCBANK")
    token, _ = create_auth_session(user=user, client_ip="127.0.0.1", user_agent="e2e")
    client = WsClient(daphne_server.url(f"/ws/{user.pk}/?token={token}"))
    client.wait_for(lambda m: m["type"] == "connection_established")

    order = place_bracket_near_1000(account=account, instrument=instrument)
    # The price comes down to the entry; the exchange fills at most 4 per tick (this price
    # write is one tick, the cycle's read of the book another).
    settings.PAPER_FILL_CAP = 4
    set_price_and_match(instrument, "994")
    run = run_user_cycle(user_id=user.pk, cycle_key="e2e-1", trigger="test")
    assert run.status == "OK", run.steps
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_FILLED and 0 < order.filled_quantity < 10
    [sl] = _legs(order, OrderLeg.Role.STOP_LOSS)
    [tp] = _legs(order, OrderLeg.Role.TAKE_PROFIT)
    # Protected for exactly what filled, no more.
    assert sl.quantity == tp.quantity == order.filled_quantity

    # The rest fills; the next cycle protects it too.
    settings.PAPER_FILL_CAP = 0
    set_price_and_match(instrument, "994")
    run_user_cycle(user_id=user.pk, cycle_key="e2e-2", trigger="test")
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED and order.filled_quantity == 10
    assert sum(leg.quantity for leg in _legs(order, OrderLeg.Role.STOP_LOSS)) == 10
    assert sum(leg.quantity for leg in _legs(order, OrderLeg.Role.TAKE_PROFIT)) == 10

    # The price reaches the target: TPs fill; the next cycle sees it and cancels the SLs.
    set_price_and_match(instrument, "1012")
    run = run_user_cycle(user_id=user.pk, cycle_key="e2e-3", trigger="test")
    assert run.status == "OK", run.steps
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    assert {leg.status for leg in _legs(order, OrderLeg.Role.TAKE_PROFIT)} == {"FILLED"}
    assert {leg.status for leg in _legs(order, OrderLeg.Role.STOP_LOSS)} == {"CANCELLED"}

    trades = BrokerTrade.objects.filter(account=account)
    bought = sum(t.price * t.quantity for t in trades if t.side == "BUY")
    sold = sum(t.price * t.quantity for t in trades if t.side == "SELL")
    expected = (sold - bought).quantize(D("0.01"))
    assert expected > 0
    account.refresh_from_db()
    assert account.realized_mtm == expected
    assert account.unrealized_mtm == D("0.00")
    assert account.total_mtm == expected
    order.refresh_from_db()
    assert order.pnl == expected and order.open_position == 0

    # What the browser saw: the order's transitions, the PnL, each cycle's completion.
    client.wait_for(
        lambda m: (
            m["type"] == "pnl_update"
            and m["account_id"] == account.pk
            and D(m["realized"]) == expected
        )
    )
    client.wait_for(
        lambda m: (
            m["type"] == "order_update" and m["order_id"] == order.pk and m["status"] == "COMPLETED"
        )
    )
    statuses = {
        m["status"]
        for m in client.messages
        if m["type"] == "order_update" and m["order_id"] == order.pk
    }
    assert {"PARTIALLY_FILLED", "FILLED", "COMPLETED"} <= statuses
    cycles = [m["cycle"] for m in client.messages if m["type"] == "cycle_complete"]
    assert cycles == ["e2e-1", "e2e-2", "e2e-3"]
    client.close()
