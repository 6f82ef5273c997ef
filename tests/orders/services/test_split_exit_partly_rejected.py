"""A square-off exit split at the freeze quantity and only partly rejected leaves no quantity
without a stop-loss. The kill switch and a trader's position exit send an exit larger than
the freeze quantity as several slices; when some were accepted and others rejected, they only
named the bracket unprotected: the rejected slices' quantity stayed open at the broker with
its stop-loss cancelled, marked exit-requested so that nothing put one back. Now the bracket
gets, at once, a stop-loss and targets for what the slices on their way do not close (never
the whole position: that would close the same quantity twice once they fill), which later
cycles keep at that size while they fill, and grow to all of what is left when the exchange
rejects them too.

Over the XTS simulator: the instrument's freeze quantity (5) splits the bracket's 10 into two
slices of 5, and the simulator's `reject_next` knob refuses one of the two order POSTs (sent
at once, so which one varies; both are 5); without a market price, the exchange rejects the
accepted one afterwards (its order book says Rejected)."""

from __future__ import annotations

import pytest

from orders.market.models import FairPrice
from orders.models import Order, OrderEvent
from orders.services import place_protective_legs
from orders.services.kill_switch import kill_switch
from tests.factories import (
    ALL_10_PROTECTED,
    HALF_OF_10_PROTECTED,
    api_client_for,
    assert_protected_again_once,
    assert_working_protection,
    exit_body,
    legs_of,
    net_at_the_broker,
    order_event_kinds,
    place_bracket,
    split_in_two_and_refuse_one,
    sync_from_broker,
    working_protection,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _exit_statuses(order: Order) -> list[str]:
    return sorted(leg.status for leg in legs_of(order, "EXIT"))


def test_a_kill_switch_exit_rejected_in_part_protects_the_rejected_slices_at_once(
    simulator, protected_bracket
):
    user, account, stock, bracket = protected_bracket
    split_in_two_and_refuse_one(simulator, stock)

    response = api_client_for(user).post(
        f"/api/accounts/{account.pk}/kill-switch", {"confirm": "KILL"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert [leg.quantity for leg in legs_of(bracket, "EXIT")] == [5, 5]
    assert _exit_statuses(bracket) == ["OPEN", "REJECTED"]
    # The 5 the rejected slice left open are covered, here and at the broker; not the 10.
    assert_working_protection(account, bracket, HALF_OF_10_PROTECTED)
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is not None  # its accepted slice is still closing
    body = response.json()
    assert body["complete"] is False
    assert body["protected_order_ids"] == [bracket.pk]
    assert body["unprotected_order_ids"] == []
    assert body["squared_off"] == ["RELIANCE 5 sold at market"]
    summary = body["summary"]
    assert f"still protected: RELIANCE (order {bracket.pk}): part of its exit was rejected" in (
        summary
    )
    assert "stop-loss and targets cover the 5 its exits do not close" in summary
    assert "WITHOUT a stop-loss" not in summary
    kept = OrderEvent.objects.get(order=bracket, kind="kill_switch_protection_kept")
    assert "part of its exit was rejected" in kept.message
    created = OrderEvent.objects.filter(
        order=bracket, kind="exit_created", message__contains="its exits working take"
    )
    assert created.count() == 2  # the new stop-loss and target, each audited


def test_the_accepted_slice_filling_leaves_the_stop_loss_at_what_stays_open(
    simulator, protected_bracket
):
    user, account, stock, bracket = protected_bracket
    split_in_two_and_refuse_one(simulator, stock)
    kill_switch(account=account, actor=f"user:{user.pk}")
    assert working_protection(bracket) == HALF_OF_10_PROTECTED

    # A cycle before the desk learns of the fill: the slice still works, nothing grows.
    place_protective_legs(account=account)
    assert working_protection(bracket) == HALF_OF_10_PROTECTED

    sync_from_broker(account)  # the accepted slice filled at once at the broker
    assert _exit_statuses(bracket) == ["FILLED", "REJECTED"]
    place_protective_legs(account=account)
    sync_from_broker(account)
    place_protective_legs(account=account)

    assert net_at_the_broker(account, stock) == 5
    assert_working_protection(account, bracket, HALF_OF_10_PROTECTED)
    bracket.refresh_from_db()
    assert bracket.status == Order.Status.FILLED  # 5 still open, protected


def test_the_accepted_slice_rejected_afterwards_gets_the_whole_rest_protected(
    simulator, protected_bracket
):
    user, account, stock, bracket = protected_bracket
    split_in_two_and_refuse_one(simulator, stock)
    # No market price: the exchange takes the MARKET slice the simulator does not refuse,
    # then rejects it (its order book says Rejected). Stop-loss and target orders rest.
    FairPrice.objects.filter(instrument=stock).delete()

    result = kill_switch(account=account, actor=f"user:{user.pk}")

    assert result.protected_order_ids == [bracket.pk]
    assert working_protection(bracket) == HALF_OF_10_PROTECTED
    sync_from_broker(account)  # the next cycle's steps 1 and 3: the other slice rejected
    assert _exit_statuses(bracket) == ["REJECTED", "REJECTED"]
    place_protective_legs(account=account)  # step 4

    covered = [("STOP_LOSS", 5), ("STOP_LOSS", 5), ("TAKE_PROFIT", 5), ("TAKE_PROFIT", 5)]
    assert_protected_again_once(account, bracket, covered)


def test_of_two_brackets_sharing_the_position_only_the_one_rejected_in_part_is_protected(
    simulator, protected_bracket
):
    user, account, stock, first = protected_bracket
    second = place_bracket(
        user=user, account=account, instrument=stock, entry="99", sl="95", tp="110", lots=10
    )
    sync_from_broker(account)
    place_protective_legs(account=account)
    assert working_protection(second) == ALL_10_PROTECTED
    # Four slices of 5 for the position of 20, two on each bracket: one is refused.
    split_in_two_and_refuse_one(simulator, stock)

    result = kill_switch(account=account, actor=f"user:{user.pk}")

    (partly,) = [o for o in (first, second) if "REJECTED" in _exit_statuses(o)]
    (whole,) = [o for o in (first, second) if o is not partly]
    assert _exit_statuses(partly) == ["OPEN", "REJECTED"]
    assert _exit_statuses(whole) == ["OPEN", "OPEN"]
    assert working_protection(partly) == HALF_OF_10_PROTECTED
    assert working_protection(whole) == []
    assert result.protected_order_ids == [partly.pk]
    assert result.unprotected_order_ids == []

    sync_from_broker(account)
    place_protective_legs(account=account)
    assert net_at_the_broker(account, stock) == 5
    assert_working_protection(account, partly, HALF_OF_10_PROTECTED)
    assert working_protection(whole) == []
    whole.refresh_from_db()
    assert whole.status == Order.Status.COMPLETED


def test_a_position_exit_rejected_in_part_answers_with_the_rest_protected(
    simulator, protected_bracket
):
    user, account, stock, bracket = protected_bracket
    split_in_two_and_refuse_one(simulator, stock)

    answer = api_client_for(user).post(
        "/api/positions/exit", exit_body(account, stock), format="json"
    )

    assert _exit_statuses(bracket) == ["OPEN", "REJECTED"]
    assert_working_protection(account, bracket, HALF_OF_10_PROTECTED)
    body = answer.json()
    assert body["protected_order_ids"] == [bracket.pk], body
    assert body["unprotected_order_ids"] == []
    assert body["complete"] is False
    assert "position_exit_protection_kept" in order_event_kinds(bracket)
