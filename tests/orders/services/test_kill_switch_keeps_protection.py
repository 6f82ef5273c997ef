"""The kill switch never leaves a filled bracket without its stop-loss when it cannot square
its position off. It once cancelled every working leg (the brackets' stop-loss and targets
included) and only then read the broker's positions: when they could not be read, or one
position's exit was rejected, the position stayed open with its stop-loss cancelled, marked
exit-requested so that nothing put protection back, on a locked account. Now the stop-loss
and targets are cancelled only once the positions can be read, are placed again at once
for a position whose exit did not go out, and stay working (no market exit beside them)
when one of them could not be cancelled; the answer names every such bracket.

Over the XTS simulator (its fault knobs fail the positions route, an order POST or a cancel)
and the paper exchange (a MARKET exit without a market price is refused)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from orders.market.models import FairPrice
from orders.models import Order, OrderEvent, OrderLeg
from orders.services import place_protective_legs, place_single_order
from orders.services.kill_switch import kill_switch
from tests.factories import (
    ALL_10_PROTECTED,
    HALF_OF_10_PROTECTED,
    PROTECTIVE_ROLES,
    account_event_kinds,
    api_client_for,
    assert_protected_again_once,
    assert_working_protection,
    legs_of,
    net_at_the_broker,
    order_event_kinds,
    place_protected_bracket,
    single_request,
    split_in_two_and_refuse_one,
    sync_from_broker,
    web_client_for,
    working_protection,
)
from tests.servers import SIM_CANCEL_ROUTE, SIM_ORDER_POST, SIM_POSITIONS_ROUTE

D = Decimal
pytestmark = pytest.mark.django_db(transaction=True)


def test_positions_the_broker_cannot_report_keep_the_stop_loss_and_targets_working(
    simulator, protected_bracket
):
    user, account, _stock, bracket = protected_bracket
    resting = place_single_order(
        user=user, request=single_request(account, limit_price=D("90.00"))
    ).order
    protection = {leg.unique_identifier for leg in legs_of(bracket) if leg.role in PROTECTIVE_ROLES}
    simulator.set_faults(error_rate=1.0, routes=[SIM_POSITIONS_ROUTE])

    response = api_client_for(user).post(
        f"/api/accounts/{account.pk}/kill-switch", {"confirm": "KILL"}, format="json"
    )

    assert response.status_code == 200, response.content
    # The resting entry is cancelled; the bracket's own stop-loss and target were never
    # touched: the same legs still work, here and at the broker.
    assert legs_of(resting)[0].status == "CANCELLED"
    assert_working_protection(account, bracket, ALL_10_PROTECTED)
    assert {leg.unique_identifier for leg in legs_of(bracket) if leg.role in PROTECTIVE_ROLES} == (
        protection
    )
    assert not OrderLeg.objects.filter(account=account, role="EXIT").exists()
    # Not left marked exit-requested: the monitoring loop keeps covering the position.
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is None
    body = response.json()
    assert body["complete"] is False
    assert body["trading_locked"] is True
    assert (body["squared_off"], body["exit_legs"], body["exit_order_ids"]) == ([], [], [])
    assert body["protected_order_ids"] == [bracket.pk]
    assert body["unprotected_order_ids"] == []
    assert body["cancelled_order_ids"] == [resting.pk]
    assert any("positions unavailable, nothing squared off" in e for e in body["errors"]), body
    assert "RELIANCE (order" in body["summary"] and "stop-loss and targets kept" in body["summary"]
    kinds = order_event_kinds(bracket)
    assert "kill_switch_protection_kept" in kinds
    assert "kill_switch_cancel" not in kinds
    assert account_event_kinds(account)[-1] == "kill_switch_incomplete"

    # Once the broker answers again, the same kill switch squares the position off.
    simulator.set_faults(error_rate=0.0, routes=[])
    again = kill_switch(account=account, actor=f"user:{user.pk}")
    assert again.complete, again.errors
    assert again.squared_off == ["RELIANCE 10 sold at market"]
    assert working_protection(bracket) == []
    assert account_event_kinds(account)[-1] == "kill_switch_completed"


def test_positions_unreadable_after_the_cancels_put_the_stop_loss_and_targets_back_at_once(
    simulator, protected_bracket, monkeypatch
):
    user, account, _stock, bracket = protected_bracket
    before = {leg.pk for leg in legs_of(bracket)}
    simulator.fail_after_answering(
        SIM_CANCEL_ROUTE, failing=[SIM_POSITIONS_ROUTE], monkeypatch=monkeypatch
    )

    result = kill_switch(account=account, actor=f"user:{user.pk}")

    # The old stop-loss and target were cancelled; new ones cover the whole position now,
    # without waiting for a monitoring cycle.
    old = [leg for leg in legs_of(bracket) if leg.pk in before and leg.role in PROTECTIVE_ROLES]
    assert {leg.status for leg in old} == {"CANCELLED"}
    assert_working_protection(account, bracket, ALL_10_PROTECTED)
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is None
    assert not result.complete
    assert result.squared_off == [] and result.exit_legs == []
    assert result.protected_order_ids == [bracket.pk]
    assert result.unprotected_order_ids == []
    assert any("nothing squared off" in error for error in result.errors), result.errors
    assert "stop-loss and targets placed again" in result.summary
    events = OrderEvent.objects.filter(order=bracket, kind="kill_switch_protection_kept")
    assert [e.message for e in events if "placed again" in e.message], list(events)


def test_an_exit_the_broker_rejects_gets_its_stop_loss_and_target_back_at_once(
    simulator, protected_bracket
):
    user, account, _stock, bracket = protected_bracket
    simulator.set_faults(reject_next=1, routes=[SIM_ORDER_POST])

    result = kill_switch(account=account, actor=f"user:{user.pk}")

    (exit_leg,) = legs_of(bracket, "EXIT")
    assert exit_leg.status == "REJECTED"
    assert_working_protection(account, bracket, ALL_10_PROTECTED)
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is None
    assert "kill_switch_protection_kept" in order_event_kinds(bracket)
    assert not result.complete
    assert result.squared_off == []
    assert any("rejected" in error for error in result.errors), result.errors
    assert result.protected_order_ids == [bracket.pk]
    # The next cycle's step 4 finds the position covered: nothing more is placed.
    sync_from_broker(account)
    place_protective_legs(account=account)
    assert working_protection(bracket) == ALL_10_PROTECTED


def test_a_stop_loss_the_broker_would_not_cancel_gets_no_market_exit_beside_it(
    simulator, protected_bracket
):
    user, account, _stock, bracket = protected_bracket
    (stop_loss,) = legs_of(bracket, "STOP_LOSS")
    # The first cancel (the stop-loss's, the older leg) fails; the target's goes through.
    simulator.set_faults(error_next=1, routes=[SIM_CANCEL_ROUTE])
    posts_before = sum(simulator.stats()["order_posts_by_uid"].values())

    result = kill_switch(account=account, actor=f"user:{user.pk}")

    # A market exit beside a working stop-loss could sell twice (a short of 10): none is sent.
    assert not OrderLeg.objects.filter(account=account, role="EXIT").exists()
    assert not Order.objects.filter(account=account, source="KILL_SWITCH").exists()
    assert not result.complete
    assert any("not squared off" in e and stop_loss.unique_identifier in e for e in result.errors)
    # The stop-loss still works; the target it cancelled is placed again (one POST).
    assert_working_protection(account, bracket, ALL_10_PROTECTED)
    assert sum(simulator.stats()["order_posts_by_uid"].values()) == posts_before + 1
    assert result.protected_order_ids == [bracket.pk]
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is None


def test_a_market_exit_the_paper_exchange_refuses_gets_the_protection_back_at_once(
    trader, account, instrument
):
    bracket = place_protected_bracket(user=trader, account=account, instrument=instrument)
    protected = working_protection(bracket)
    assert protected == [("STOP_LOSS", 100), ("TAKE_PROFIT", 50), ("TAKE_PROFIT", 50)]
    # No market price: the exchange refuses a MARKET order at once.
    FairPrice.objects.filter(instrument=instrument).delete()

    result = kill_switch(account=account, actor=f"user:{trader.pk}")

    assert_working_protection(account, bracket, protected)
    assert not result.complete
    assert any("No market price" in error for error in result.errors), result.errors
    assert result.squared_off == []
    assert result.protected_order_ids == [bracket.pk]
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is None
    assert "kill_switch_protection_kept" in order_event_kinds(bracket)
    assert "kill_switch_incomplete" in account_event_kinds(account)


def test_an_exit_the_exchange_rejects_after_accepting_it_gets_the_protection_back(
    trader, account, instrument, settings
):
    bracket = place_protected_bracket(user=trader, account=account, instrument=instrument)
    protected = working_protection(bracket)
    # The exchange accepts the exit, then its book shows it Rejected.
    settings.PAPER_REJECT_RATE = "1"
    result = kill_switch(account=account, actor=f"user:{trader.pk}")
    settings.PAPER_REJECT_RATE = "0"
    assert result.squared_off == ["RELIANCE 100 sold at market"]
    assert working_protection(bracket) == []

    sync_from_broker(account)  # the next cycle's steps 1 and 3: the exit was rejected
    (exit_leg,) = legs_of(bracket, "EXIT")
    assert exit_leg.status == "REJECTED"
    place_protective_legs(account=account)  # step 4

    assert_protected_again_once(account, bracket, protected)


def test_the_paper_kill_switch_that_squares_off_leaves_nothing_working_and_says_so(
    trader, account, instrument
):
    bracket = place_protected_bracket(user=trader, account=account, instrument=instrument)

    result = kill_switch(account=account, actor=f"user:{trader.pk}")

    assert result.complete, result.errors
    assert result.protected_order_ids == [] and result.unprotected_order_ids == []
    assert result.squared_off == ["RELIANCE 100 sold at market"]
    assert working_protection(bracket) == []
    bracket.refresh_from_db()
    assert bracket.status == Order.Status.COMPLETED
    assert "kill_switch_protection_kept" not in order_event_kinds(bracket)
    assert account_event_kinds(account)[-1] == "kill_switch_completed"


def test_the_web_kill_switch_says_the_position_was_not_squared_off_and_stays_protected(
    simulator, protected_bracket
):
    user, account, _stock, bracket = protected_bracket
    simulator.set_faults(error_rate=1.0, routes=[SIM_POSITIONS_ROUTE])
    web = web_client_for(user)

    done = web.post(
        reverse("account_kill_switch", args=[account.pk]),
        {"confirmation": account.account_name},
        follow=True,
    )

    assert working_protection(bracket) == ALL_10_PROTECTED
    page = done.content.decode()
    assert "squared off 0 positions" in page
    assert "nothing squared off" in page
    assert f"RELIANCE (order {bracket.pk})" in page
    assert "stop-loss and targets kept" in page


def _half_squared_off(simulator, protected_bracket):
    """A first kill switch squares off half: one slice of the exit refused, the bracket stays
    exit-requested with a stop-loss and target for the 5 still open."""
    user, account, stock, bracket = protected_bracket
    split_in_two_and_refuse_one(simulator, stock)
    kill_switch(account=account, actor=f"user:{user.pk}")
    sync_from_broker(account)
    place_protective_legs(account=account)
    assert net_at_the_broker(account, stock) == 5
    assert working_protection(bracket) == HALF_OF_10_PROTECTED
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is not None
    return user, account, bracket


def test_a_second_kill_switch_that_cannot_read_the_positions_puts_back_what_it_cancelled(
    simulator, protected_bracket, monkeypatch
):
    user, account, bracket = _half_squared_off(simulator, protected_bracket)
    # The second cancels that stop-loss and target, then the positions cannot be read.
    simulator.fail_after_answering(
        SIM_CANCEL_ROUTE, failing=[SIM_POSITIONS_ROUTE], monkeypatch=monkeypatch
    )
    before = {leg.pk for leg in legs_of(bracket) if leg.role in PROTECTIVE_ROLES}

    result = kill_switch(account=account, actor=f"user:{user.pk}")

    # What it cancelled is placed again at once: the 5 the broker holds keep a stop-loss.
    old = [leg for leg in legs_of(bracket) if leg.pk in before and leg.status == "OPEN"]
    assert old == []
    assert_working_protection(account, bracket, HALF_OF_10_PROTECTED)
    assert not result.complete
    assert result.squared_off == []
    assert result.protected_order_ids == [bracket.pk]
    assert result.unprotected_order_ids == []
    assert f"RELIANCE (order {bracket.pk}): stop-loss and targets placed again" in (result.summary)
    kept = OrderEvent.objects.filter(order=bracket, kind="kill_switch_protection_kept")
    assert any("placed again at once" in e.message for e in kept), [e.message for e in kept]
    # Not left exit-requested: the monitoring loop keeps covering the position, and finds
    # nothing more to place.
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is None
    simulator.set_faults(error_rate=0.0, routes=[])
    sync_from_broker(account)
    place_protective_legs(account=account)
    assert working_protection(bracket) == HALF_OF_10_PROTECTED


def test_a_second_kill_switch_holding_the_position_back_puts_back_the_target_it_cancelled(
    simulator, protected_bracket
):
    user, account, bracket = _half_squared_off(simulator, protected_bracket)
    (stop_loss,) = [leg for leg in legs_of(bracket, "STOP_LOSS") if leg.status == "OPEN"]
    # The second's first cancel (the stop-loss's, the older leg) fails; the target's goes
    # through, and no market exit goes out beside the stop-loss still working.
    simulator.set_faults(error_next=1, routes=[SIM_CANCEL_ROUTE])

    result = kill_switch(account=account, actor=f"user:{user.pk}")

    assert any("not squared off" in e and stop_loss.unique_identifier in e for e in result.errors)
    assert result.squared_off == []
    assert_working_protection(account, bracket, HALF_OF_10_PROTECTED)
    assert result.protected_order_ids == [bracket.pk]
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is None
