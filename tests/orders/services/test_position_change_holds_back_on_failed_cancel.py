"""A position change that exits a bracket in full (OpenAlgo's placesmartorder, the strategy
webhook) cancels the bracket's working stop-loss and targets first. When the broker refuses
such a cancel, the bracket's exit is held back: a stop-loss left working would otherwise
open the position again the other way once the exit filled. Over the XTS simulator, whose
fault knobs make every cancel fail."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from orders.brokers.sessions import broker_client
from orders.models import OrderEvent, OrderLeg
from orders.services import place_protective_legs
from tests.factories import sell_by_position_change, sync_from_broker, xts_protected_bracket

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


def test_a_bracket_held_back_after_a_partial_stand_down_is_protected_again(
    simulator, protected_bracket
):
    # The target was cancelled at the broker behind the desk's back: the stand-down cancels
    # the stop-loss, the target's cancel is refused, the exit is held back. The bracket
    # stayed exit-requested, so step 4 never put a stop-loss back: an open position with
    # no protection at all.
    user, account, stock, bracket = protected_bracket
    target = bracket.legs.get(role=OrderLeg.Role.TAKE_PROFIT)
    async_to_sync(broker_client(account).cancel_order)(
        target.broker_order_id, target.unique_identifier
    )

    live = sell_by_position_change(user, account, stock)
    assert not live.result.exit_legs and "could not cancel leg" in live.result.errors[0]
    assert bracket.legs.get(role=OrderLeg.Role.STOP_LOSS).status == "CANCELLED"

    sync_from_broker(account)
    place_protective_legs(account=account)  # the next cycle's step 4
    working = bracket.legs.filter(status=OrderLeg.Status.OPEN)
    assert sorted(working.values_list("role", "quantity")) == [
        (OrderLeg.Role.STOP_LOSS, 10),
        (OrderLeg.Role.TAKE_PROFIT, 10),
    ]
