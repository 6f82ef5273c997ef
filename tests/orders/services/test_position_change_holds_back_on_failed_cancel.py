"""A position change that exits a bracket in full (OpenAlgo's placesmartorder, the strategy
webhook) cancels the bracket's working stop-loss and targets first. When the broker refuses
such a cancel, the bracket's exit is held back: a stop-loss left working would otherwise
open the position again the other way once the exit filled; what the cancels that went
through took from its stop-loss and targets is placed again at once. Over the XTS simulator,
whose fault knobs make every cancel fail (or refuse the next order)."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from orders.brokers.sessions import broker_client
from orders.models import OrderEvent, OrderLeg
from orders.services import place_protective_legs
from tests.factories import (
    sell_by_position_change,
    sync_from_broker,
    working_protection_at_the_broker,
    xts_protected_bracket,
)
from tests.servers import SIM_ORDER_POST

CANCEL_ROUTE = "DELETE /interactive/orders"


@pytest.fixture
def protected_bracket(simulator, settings):
    return xts_protected_bracket(simulator, settings)


def test_a_failed_stop_loss_cancel_holds_the_brackets_exit_back(simulator, protected_bracket):
    user, account, stock, bracket = protected_bracket
    simulator.set_faults(error_rate=1.0, routes=[CANCEL_ROUTE])
    posts_before = sum(simulator.stats()["order_posts_by_uid"].values())

    live = sell_by_position_change(user, account, stock)

    assert live.current == 10
    result = live.result
    # Nothing went out: no exit leg written, no order POSTed to the broker.
    assert not result.exit_legs and result.placement is None
    assert not OrderLeg.objects.filter(order=bracket, role="EXIT").exists()
    assert sum(simulator.stats()["order_posts_by_uid"].values()) == posts_before
    # The protection stands and the trader is told why.
    legs = {leg.role: leg.status for leg in bracket.legs.all()}
    assert legs["STOP_LOSS"] == "OPEN"
    assert len(result.errors) == 1
    assert f"bracket {bracket.pk}: nothing was sent" in result.errors[0]
    assert "could not cancel leg" in result.errors[0]
    # Audited: the failed cancels and the exit held back.
    kinds = list(OrderEvent.objects.filter(order=bracket).values_list("kind", flat=True))
    assert "leg_cancelled_failed" in kinds
    assert "positions_exit_failed" in kinds


def test_with_cancels_working_the_same_change_exits_through_the_bracket(
    simulator, protected_bracket
):
    user, account, stock, bracket = protected_bracket

    live = sell_by_position_change(user, account, stock)

    assert not live.result.errors
    legs = {leg.role: leg for leg in bracket.legs.all()}
    assert legs["STOP_LOSS"].status == "CANCELLED"
    assert (legs["EXIT"].side, legs["EXIT"].quantity) == ("SELL", 10)


def _cancel_the_target_behind_the_desks_back(account, bracket):
    """The target cancelled at the broker behind the desk's back: a stand-down cancels the
    stop-loss, the target's cancel is refused, the exit is held back."""
    target = bracket.legs.get(role=OrderLeg.Role.TAKE_PROFIT)
    async_to_sync(broker_client(account).cancel_order)(
        target.broker_order_id, target.unique_identifier
    )


def test_a_bracket_held_back_after_a_partial_stand_down_is_protected_again_at_once(
    simulator, protected_bracket
):
    # Its stop-loss was cancelled before the target's cancel failed. It once waited for the
    # next monitoring cycle (up to a minute) with no stop-loss at all.
    user, account, stock, bracket = protected_bracket
    _cancel_the_target_behind_the_desks_back(account, bracket)
    (old_stop,) = bracket.legs.filter(role=OrderLeg.Role.STOP_LOSS)

    live = sell_by_position_change(user, account, stock)

    result = live.result
    assert not result.exit_legs and "could not cancel leg" in result.errors[0]
    assert bracket.legs.get(pk=old_stop.pk).status == "CANCELLED"
    # A new stop-loss for the whole position, here and at the broker, before any cycle.
    new_stops = bracket.legs.filter(role=OrderLeg.Role.STOP_LOSS, status="OPEN")
    assert list(new_stops.values_list("quantity", flat=True)) == [10]
    assert ("STOP_LOSS", 10) in working_protection_at_the_broker(account, bracket)
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is None
    assert result.protection.protected_order_ids == [bracket.pk]
    assert result.protection.unprotected_order_ids == []
    assert result.protection.protected_words == (
        f"Not squared off, still protected: RELIANCE (order {bracket.pk}): stop-loss and "
        "targets placed again."
    )
    held = OrderEvent.objects.get(order=bracket, kind="positions_exit_failed")
    assert "its stop-loss and targets cancelled are placed again at once" in held.message
    created = OrderEvent.objects.filter(order=bracket, kind="exit_created")
    assert created.filter(leg__pk=new_stops.get().pk).exists()

    # The next cycle learns the target is gone and puts it back; the stop-loss stays one.
    sync_from_broker(account)
    place_protective_legs(account=account)
    working = bracket.legs.filter(status=OrderLeg.Status.OPEN)
    assert sorted(working.values_list("role", "quantity")) == [
        (OrderLeg.Role.STOP_LOSS, 10),
        (OrderLeg.Role.TAKE_PROFIT, 10),
    ]


def test_a_held_back_bracket_whose_stop_loss_the_broker_refuses_is_named_unprotected(
    simulator, protected_bracket
):
    user, account, stock, bracket = protected_bracket
    _cancel_the_target_behind_the_desks_back(account, bracket)
    simulator.set_faults(reject_next=1, routes=[SIM_ORDER_POST])

    result = sell_by_position_change(user, account, stock).result

    assert not bracket.legs.filter(role=OrderLeg.Role.STOP_LOSS, status="OPEN").exists()
    assert result.protection.unprotected_order_ids == [bracket.pk]
    assert result.protection.protected_order_ids == []
    assert result.protection.unprotected_words == (
        "NOT squared off and WITHOUT a stop-loss, square off at the broker now: "
        f"RELIANCE (order {bracket.pk}): its stop-loss could not be placed again."
    )
    assert any("STOP_LOSS leg rejected" in error for error in result.errors), result.errors
