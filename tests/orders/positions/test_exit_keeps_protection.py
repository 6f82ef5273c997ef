"""A trader's position exit never leaves a filled bracket without its stop-loss when it cannot
square its position off. It cancelled the bracket's stop-loss and targets first and only then
read the broker's positions: when they could not be read, or the exit was rejected, the
position stayed open without a stop-loss until the next monitoring cycle or broker event put
one back (up to a minute, or never with the loop down); a stop-loss the broker would not
cancel held the exit back but left the targets cancelled. Now it works in the kill switch's
order (orders.services.square_off): the stop-loss and targets are cancelled only once the
positions can be read, are placed again at once for a position whose exit did not go out,
and stay working (no market exit beside them) when one of them could not be cancelled; the
answer, API and web, names every such bracket.

Through the API (exit, exit-all) and the positions page, over the XTS simulator's fault knobs
and the paper exchange (which refuses a MARKET order without a market price)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from orders.market.models import FairPrice
from orders.models import OrderEvent, OrderLeg
from tests.factories import (
    ALL_10_PROTECTED,
    PROTECTIVE_ROLES,
    account_event_kinds,
    api_client_for,
    assert_working_protection,
    exit_body,
    legs_of,
    make_reliance_at_100,
    order_event_kinds,
    place_protected_bracket,
    sync_positions,
    web_client_for,
    working_protection,
    working_protection_at_the_broker,
)
from tests.servers import SIM_CANCEL_ROUTE, SIM_ORDER_POST, SIM_POSITIONS_ROUTE

pytestmark = pytest.mark.django_db(transaction=True)


def _exit_form(account, instrument) -> dict:
    """The positions page's Exit form for the account's MIS position in `instrument`."""
    return {**exit_body(account, instrument), "symbol": instrument.trading_symbol}


def test_positions_the_broker_cannot_report_keep_the_stop_loss_and_target_working(
    simulator, protected_bracket
):
    user, account, stock, bracket = protected_bracket
    protection = {leg.pk for leg in legs_of(bracket) if leg.role in PROTECTIVE_ROLES}
    simulator.set_faults(error_rate=1.0, routes=[SIM_POSITIONS_ROUTE])

    answer = api_client_for(user).post(
        "/api/positions/exit", exit_body(account, stock), format="json"
    )

    # Nothing exited: a 409 that says the bracket is still protected, by the same legs.
    assert answer.status_code == 409, answer.content
    assert working_protection(bracket) == ALL_10_PROTECTED
    body = answer.json()
    assert "positions unavailable, nothing squared off" in body["error"]
    assert (
        f"still protected: RELIANCE (order {bracket.pk}): stop-loss and targets kept"
        in (body["error"])
    )
    assert body["details"]["protected_order_ids"] == [bracket.pk]
    assert body["details"]["unprotected_order_ids"] == []
    assert body["details"]["cancelled_legs"] == []
    assert working_protection_at_the_broker(account, bracket) == ALL_10_PROTECTED
    assert {leg.pk for leg in legs_of(bracket) if leg.status == "OPEN"} == protection
    assert not OrderLeg.objects.filter(account=account, role="EXIT").exists()
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is None
    kinds = order_event_kinds(bracket)
    assert "position_exit_protection_kept" in kinds
    assert "position_exit_cancel" not in kinds
    assert account_event_kinds(account)[-1] == "positions_exit_failed"


def test_exit_all_with_positions_unreadable_after_the_cancels_puts_the_protection_back_at_once(
    simulator, protected_bracket, monkeypatch
):
    user, account, _stock, bracket = protected_bracket
    first = {leg.pk for leg in legs_of(bracket) if leg.role in PROTECTIVE_ROLES}
    simulator.fail_after_answering(
        SIM_CANCEL_ROUTE, failing=[SIM_POSITIONS_ROUTE], monkeypatch=monkeypatch
    )

    answer = api_client_for(user).post(
        "/api/positions/exit-all", {"account_id": account.pk, "confirm": "EXIT ALL"}, format="json"
    )

    # New legs cover the whole position at once, in place of the cancelled ones: no monitoring
    # cycle or broker event was needed.
    assert_working_protection(account, bracket, ALL_10_PROTECTED)
    assert {leg.status for leg in legs_of(bracket) if leg.pk in first} == {"CANCELLED"}
    assert answer.status_code == 409, answer.content
    details = answer.json()["details"]
    # Placed again for the desk's own position, and the answer says so.
    assert details["protected"] == [
        f"RELIANCE (order {bracket.pk}): stop-loss and targets placed again, for the desk's "
        "own position (the broker's positions could not be read)"
    ]
    assert (details["exited"], details["exit_legs"]) == ([], [])
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is None
    kept = OrderEvent.objects.get(order=bracket, kind="position_exit_protection_kept")
    assert "placed again at once" in kept.message


def test_an_exit_the_broker_rejects_gets_its_stop_loss_and_target_back_at_once(
    simulator, protected_bracket
):
    user, account, stock, bracket = protected_bracket
    simulator.set_faults(reject_next=1, routes=[SIM_ORDER_POST])

    answer = api_client_for(user).post(
        "/api/positions/exit", exit_body(account, stock), format="json"
    )

    (exit_leg,) = legs_of(bracket, "EXIT")
    assert exit_leg.status == "REJECTED"
    assert_working_protection(account, bracket, ALL_10_PROTECTED)
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is None
    body = answer.json()
    assert body["protected_order_ids"] == [bracket.pk], body
    assert body["protected"] == [
        f"RELIANCE (order {bracket.pk}): stop-loss and targets placed again"
    ]
    assert body["complete"] is False
    assert any("rejected" in error for error in body["errors"]), body


def test_a_stop_loss_the_broker_would_not_cancel_gets_no_market_exit_and_the_target_back(
    simulator, protected_bracket
):
    user, account, stock, bracket = protected_bracket
    (stop_loss,) = legs_of(bracket, "STOP_LOSS")
    # The first cancel (the stop-loss's, the older leg) fails; the target's goes through.
    simulator.set_faults(error_next=1, routes=[SIM_CANCEL_ROUTE])
    posts = simulator.stats()["order_posts_by_uid"]
    web = web_client_for(user)

    page = web.post(reverse("positions_exit"), _exit_form(account, stock), follow=True)

    # The stop-loss still works, and the target it cancelled is placed again at once (one
    # more order POST); a market exit beside the stop-loss could sell twice: none is sent.
    assert_working_protection(account, bracket, ALL_10_PROTECTED)
    assert sum(simulator.stats()["order_posts_by_uid"].values()) == sum(posts.values()) + 1
    assert not OrderLeg.objects.filter(account=account, role="EXIT").exists()
    text = page.content.decode()
    assert f"leg {stop_loss.unique_identifier} could not be cancelled" in text
    assert f"RELIANCE (order {bracket.pk}): stop-loss and targets placed again" in text


def test_a_market_exit_the_paper_exchange_refuses_gets_the_protection_back_at_once(trader, account):
    instrument = make_reliance_at_100()
    bracket = place_protected_bracket(user=trader, account=account, instrument=instrument)
    protected = working_protection(bracket)
    assert protected == [("STOP_LOSS", 100), ("TAKE_PROFIT", 50), ("TAKE_PROFIT", 50)]
    sync_positions(account)
    # No market price: the exchange refuses a MARKET order at once.
    FairPrice.objects.filter(instrument=instrument).delete()

    answer = api_client_for(trader).post(
        "/api/positions/exit", exit_body(account, instrument), format="json"
    )

    assert_working_protection(account, bracket, protected)
    body = answer.json()
    assert "No market price" in "; ".join(body["errors"]), body
    assert body["protected_order_ids"] == [bracket.pk]
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is None
    assert "position_exit_protection_kept" in order_event_kinds(bracket)
    assert account_event_kinds(account)[-1] == "positions_exit_incomplete"
