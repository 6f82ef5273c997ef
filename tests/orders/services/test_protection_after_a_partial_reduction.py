"""A bracket the trader partly reduced (a position change gave it a MARKET exit of part of its
position: orders.services.position_changes, not exit-requested) whose entry keeps filling:
step 4 protects what the entry fills next. It used to refuse new protection for any bracket
with an exit leg filled or working, so the newly filled quantity had no stop-loss.

Never more than the open position: an exit still working (or not answered yet) takes its
quantity, which no new stop-loss may close a second time.

Over the XTS simulator: a bracket BUY 10 whose entry fills 4 per matching tick."""

from __future__ import annotations

import pytest

from orders.models import OrderEvent
from orders.services import place_protective_legs
from tests.factories import (
    legs_of,
    make_fair_price,
    net_at_the_broker,
    sell_by_position_change,
    sync_from_broker,
    working_protection,
    working_protection_at_the_broker,
    xts_bracket_protected_4_of_10,
)
from tests.servers import SIM_ORDER_POST

pytestmark = pytest.mark.django_db(transaction=True)


def _sell(user, account, stock, quantity):
    """A position change selling `quantity` of the MIS position (OpenAlgo's placesmartorder)."""
    live = sell_by_position_change(user, account, stock, quantity)
    assert live.result is not None and live.result.placement is None
    return live.result


def _sl_total(bracket) -> int:
    return sum(qty for role, qty in working_protection(bracket) if role == "STOP_LOSS")


def _tp_total(bracket) -> int:
    return sum(qty for role, qty in working_protection(bracket) if role == "TAKE_PROFIT")


def test_a_partly_reduced_bracket_protects_what_its_entry_fills_next(simulator, settings):
    user, account, stock, bracket = xts_bracket_protected_4_of_10(simulator, settings)
    _sell(user, account, stock, 2)  # the trader takes 2 off: the bracket's own exit
    sync_from_broker(account)
    place_protective_legs(account=account)  # one-cancels-other: the exits shrink to 2
    assert [(leg.quantity, leg.status) for leg in legs_of(bracket, "EXIT")] == [(2, "FILLED")]
    assert (_sl_total(bracket), _tp_total(bracket)) == (2, 2)
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is None

    make_fair_price(stock, "98.50")
    sync_from_broker(account)  # the entry fills 4 more: 8 filled, 6 open
    make_fair_price(stock, "100.00")
    place_protective_legs(account=account)

    assert (_sl_total(bracket), _tp_total(bracket)) == (6, 6)
    assert working_protection_at_the_broker(account, bracket) == working_protection(bracket)
    assert net_at_the_broker(account, stock) == 6
    created = OrderEvent.objects.filter(order=bracket, kind="exit_created").order_by("-id")
    assert "to cover the open position of 6" in created[0].message

    make_fair_price(stock, "98.50")
    sync_from_broker(account)  # the last 2: 10 filled, 8 open
    make_fair_price(stock, "100.00")
    place_protective_legs(account=account)
    place_protective_legs(account=account)  # nothing more: no duplicate legs
    assert (_sl_total(bracket), _tp_total(bracket)) == (8, 8)
    assert working_protection_at_the_broker(account, bracket) == working_protection(bracket)
    assert net_at_the_broker(account, stock) == 8


def test_a_new_stop_loss_leaves_out_what_a_working_exit_will_close(simulator, settings):
    user, account, stock, bracket = xts_bracket_protected_4_of_10(simulator, settings)
    settings.ORDER_PENDING_GRACE_SECONDS = 3600
    # The exit's POST gets no answer the desk can read: it stays on its way (pending).
    simulator.set_faults(error_next=1, routes=[SIM_ORDER_POST])
    _sell(user, account, stock, 2)
    ((exit_quantity, exit_status),) = [
        (leg.quantity, leg.status) for leg in legs_of(bracket, "EXIT")
    ]
    assert (exit_quantity, exit_status) == (2, "PENDING_SUBMIT")

    make_fair_price(stock, "98.50")
    sync_from_broker(account)  # the entry fills 4 more: 8 open, 2 of them on their way out
    make_fair_price(stock, "100.00")
    place_protective_legs(account=account)

    # 6 are protected, not 8: a stop-loss of 8 beside the exit of 2 could sell 10 of 8.
    assert (_sl_total(bracket), _tp_total(bracket)) == (6, 6)
    assert working_protection_at_the_broker(account, bracket) == working_protection(bracket)

    # The exit never reached the broker: once settled (rejected), its 2 are protected too.
    settings.ORDER_PENDING_GRACE_SECONDS = 0
    sync_from_broker(account)
    assert [leg.status for leg in legs_of(bracket, "EXIT")] == ["REJECTED"]
    place_protective_legs(account=account)
    assert (_sl_total(bracket), _tp_total(bracket)) == (8, 8)
    assert net_at_the_broker(account, stock) == 8
