"""The 60-second cycle is the safety net (issue 12 item 7): with no event source running and
no handler called, whatever happened at the broker converges within one cycle: the entry
fill is protected, a stop-loss fill cancels the target, and the PnL is right."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from accounts.models import BrokerAccount
from monitoring.services import run_user_cycle
from orders.brokers.paper.models import PaperOrder, PaperTrade
from orders.models import Order, OrderLeg
from tests.factories import (
    make_desk,
    place_bracket_near_1000,
    set_price_and_match,
)

pytestmark = pytest.mark.django_db(transaction=True)

Role = OrderLeg.Role


def test_with_no_events_one_cycle_protects_the_fill_and_the_next_closes_the_bracket():
    user, account, instrument = make_desk(symbol="SBIN")
    order = place_bracket_near_1000(account=account, instrument=instrument)
    set_price_and_match(instrument, "994")  # filled at the broker; nobody told the desk

    run = run_user_cycle(user_id=user.pk, cycle_key="net-1", trigger="test")

    assert run.status == "OK", (run.errors, run.steps)
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.open_position) == ("FILLED", 10, 10)
    [sl] = order.legs.filter(role=Role.STOP_LOSS)
    [tp] = order.legs.filter(role=Role.TAKE_PROFIT)
    assert (sl.status, sl.quantity, tp.status, tp.quantity) == ("OPEN", 10, "OPEN", 10)

    set_price_and_match(instrument, "979.5")  # the stop-loss fills; still no event

    run = run_user_cycle(user_id=user.pk, cycle_key="net-2", trigger="test")

    assert run.status == "OK", (run.errors, run.steps)
    order.refresh_from_db()
    tp.refresh_from_db()
    sl.refresh_from_db()
    assert (sl.status, tp.status, order.status) == ("FILLED", "CANCELLED", "COMPLETED")
    assert PaperOrder.objects.get(unique_identifier=tp.unique_identifier).status == "CANCELLED"
    # The PnL from the exchange's own fills, computed apart: sold 10 at the stop-loss's
    # price, bought 10 at the entry's.
    fills = {t.side: t.price for t in PaperTrade.objects.filter(book__account_id=account.pk)}
    expected = (fills["SELL"] - fills["BUY"]) * 10
    account = BrokerAccount.objects.get(pk=account.pk)
    assert account.realized_mtm == expected.quantize(D("0.01"))
    assert account.unrealized_mtm == 0
    assert order.open_position == 0
    assert Order.objects.get(pk=order.pk).pnl == expected.quantize(D("0.01"))
