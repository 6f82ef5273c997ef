"""A bracket's entry that the kill switch or a position exit could not cancel, and that fills
afterwards, is squared off at once (orders.services.late_fills). It used to stay
exit-requested, so step 4 placed nothing for it: the late fill was a position without a
stop-loss, on an account its trader had just asked to get out of.

Over the XTS simulator: a cancel it refuses (its fault knobs), fills it makes as its price
moves (a matching tick per book read), the broker event or the cycle that tells the desk."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from monitoring.events import handle_broker_event
from orders.brokers.sessions import broker_client
from orders.models import OrderEvent
from orders.services import place_protective_legs
from orders.services.kill_switch import kill_switch
from orders.services.protection import ProtectiveLegsIncomplete
from tests.factories import (
    api_client_for,
    assert_working_protection,
    broker_event,
    exit_body,
    legs_of,
    make_fair_price,
    net_at_the_broker,
    order_event_kinds,
    set_price_and_match,
    sync_from_broker,
    working_protection,
    xts_bracket_protected_4_of_10,
    xts_resting_bracket,
)
from tests.servers import SIM_CANCEL_ROUTE, SIM_ORDER_POST, SIM_POSITIONS_ROUTE

pytestmark = pytest.mark.django_db(transaction=True)


def _book_row(account, leg):
    book = async_to_sync(broker_client(account).order_book)()
    return next(row for row in book if row.unique_identifier == leg.unique_identifier)


def _exits(order) -> list[tuple[str, int, str, str]]:
    return [(leg.side, leg.quantity, leg.order_type, leg.status) for leg in legs_of(order, "EXIT")]


def test_an_entry_the_kill_switch_could_not_cancel_is_squared_off_the_moment_it_fills(
    simulator, settings
):
    user, account, stock, bracket = xts_resting_bracket(simulator, settings)
    (entry,) = legs_of(bracket, "ENTRY")
    simulator.set_faults(error_next=1, routes=[SIM_CANCEL_ROUTE])
    result = kill_switch(account=account, actor=f"user:{user.pk}")
    assert any(f"could not cancel leg {entry.unique_identifier}" in e for e in result.errors)
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is not None

    # The entry fills at the broker; its stream tells the desk.
    set_price_and_match(stock, "98.50")
    handle_broker_event(broker_event(account, order=_book_row(account, entry), source="xts"))

    # Squared off at once, through the bracket's own MARKET exit: no stop-loss or target.
    assert [(side, qty, kind) for side, qty, kind, _status in _exits(bracket)] == [
        ("SELL", 10, "MARKET")
    ]
    assert working_protection(bracket) == []
    late = OrderEvent.objects.get(order=bracket, kind="late_fill")
    assert late.message == (
        "its entry filled 10 more after the exit was asked for: squared off at once with a "
        "MARKET exit of 10"
    )
    sync_from_broker(account)
    assert _exits(bracket) == [("SELL", 10, "MARKET", "FILLED")]
    assert net_at_the_broker(account, stock) == 0
    bracket.refresh_from_db()
    assert bracket.status == "COMPLETED"


def _late_fill_after_a_position_exit(simulator, settings):
    """A bracket whose entry filled 4 of 10 (protected by a stop-loss and a target of 4); the
    trader's exit of the position could not cancel the entry (the broker refused) and sold
    the 4; then the entry fills 4 more, and the desk's cycle reads it (steps 1-3). Returns
    (user, account, instrument, bracket)."""
    user, account, stock, bracket = xts_bracket_protected_4_of_10(simulator, settings)
    # Nothing fills while the exit runs (the price is above the entry).
    simulator.set_faults(error_next=1, routes=[SIM_CANCEL_ROUTE])  # the entry's, the first

    answer = api_client_for(user).post(
        "/api/positions/exit", exit_body(account, stock), format="json"
    )

    assert answer.status_code == 200, answer.content
    (entry,) = legs_of(bracket, "ENTRY")
    assert any(
        f"could not cancel leg {entry.unique_identifier}" in e for e in answer.json()["errors"]
    )
    sync_from_broker(account)
    assert _exits(bracket) == [("SELL", 4, "MARKET", "FILLED")]
    assert net_at_the_broker(account, stock) == 0
    make_fair_price(stock, "98.50")
    sync_from_broker(account)  # the entry fills 4 more
    (entry,) = legs_of(bracket, "ENTRY")
    assert (entry.status, entry.filled_quantity) == ("PARTIALLY_FILLED", 8)
    return user, account, stock, bracket


def test_an_entry_filling_after_the_position_exit_is_squared_off_and_the_rest_cancelled(
    simulator, settings
):
    _user, account, stock, bracket = _late_fill_after_a_position_exit(simulator, settings)

    place_protective_legs(account=account)  # the cycle's step 4

    (entry,) = legs_of(bracket, "ENTRY")
    assert (entry.status, entry.filled_quantity) == ("CANCELLED", 8)
    sync_from_broker(account)
    assert _exits(bracket) == [("SELL", 4, "MARKET", "FILLED"), ("SELL", 4, "MARKET", "FILLED")]
    assert net_at_the_broker(account, stock) == 0
    assert working_protection(bracket) == []
    assert "late_fill" in order_event_kinds(bracket)
    bracket.refresh_from_db()
    assert bracket.status == "COMPLETED"


def test_a_late_fill_whose_exit_the_broker_rejects_gets_its_stop_loss_and_target(
    simulator, settings
):
    _user, account, stock, bracket = _late_fill_after_a_position_exit(simulator, settings)
    simulator.set_faults(reject_next=1, routes=[SIM_ORDER_POST])

    with pytest.raises(ProtectiveLegsIncomplete, match="exit of its late fill was rejected"):
        place_protective_legs(account=account)
    place_protective_legs(account=account)  # the next cycle's step 4

    # Nothing closes the late 4 any more: they are protected, and no longer exit-requested.
    assert [status for *_rest, status in _exits(bracket)] == ["FILLED", "REJECTED"]
    assert_working_protection(account, bracket, [("STOP_LOSS", 4), ("TAKE_PROFIT", 4)])
    assert net_at_the_broker(account, stock) == 4
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is None
    assert "exit_refused" in order_event_kinds(bracket)


def test_a_fill_the_kill_switch_already_sold_is_not_sold_again(simulator, settings, monkeypatch):
    user, account, stock, bracket = xts_resting_bracket(simulator, settings)
    simulator.set_faults(error_next=1, routes=[SIM_CANCEL_ROUTE])
    # The entry fills at the broker after the kill switch read the order book (the desk
    # does not know), before it reads the positions (which hold the fill).
    simulator.after_answering(
        "GET /interactive/orders", lambda: make_fair_price(stock, "98.50"), monkeypatch=monkeypatch
    )

    result = kill_switch(account=account, actor=f"user:{user.pk}")

    assert result.squared_off == ["RELIANCE 10 sold at market"]
    sync_from_broker(account)  # the desk learns of the entry's fill, and of the exit's
    place_protective_legs(account=account)

    # The late fill was sold already (the kill switch's own exit order): nothing more.
    assert legs_of(bracket, "EXIT") == []
    assert net_at_the_broker(account, stock) == 0
    late = OrderEvent.objects.get(order=bracket, kind="late_fill")
    assert "nothing to square off" in late.message
    place_protective_legs(account=account)  # and the next cycle leaves it so
    assert legs_of(bracket, "EXIT") == [] and working_protection(bracket) == []
    assert OrderEvent.objects.filter(order=bracket, kind="late_fill").count() == 1


def _late_fill_rows(bracket) -> list[str]:
    return list(
        OrderEvent.objects.filter(order=bracket, kind="late_fill")
        .order_by("id")
        .values_list("message", flat=True)
    )


def test_a_late_fill_waiting_for_the_brokers_position_is_recorded_once(simulator, settings):
    # Each retry (each cycle, each broker event) while the positions could not be read wrote
    # another late_fill row: a trail of identical rows until the broker answered.
    _user, account, stock, bracket = _late_fill_after_a_position_exit(simulator, settings)
    simulator.set_faults(error_rate=1.0, routes=[SIM_POSITIONS_ROUTE])

    for _cycle in range(3):
        with pytest.raises(ProtectiveLegsIncomplete, match="not squared off yet"):
            place_protective_legs(account=account)
    (entry,) = legs_of(bracket, "ENTRY")
    handle_broker_event(broker_event(account, order=_book_row(account, entry), source="xts"))

    (waiting,) = _late_fill_rows(bracket)
    assert "its entry filled 4 more after the exit was asked for, not squared off yet" in waiting
    assert _exits(bracket) == [("SELL", 4, "MARKET", "FILLED")]  # nothing sent meanwhile

    # The positions readable again: squared off as before, and recorded as such.
    simulator.set_faults(error_rate=0.0)
    place_protective_legs(account=account)

    sync_from_broker(account)
    assert _exits(bracket) == [("SELL", 4, "MARKET", "FILLED"), ("SELL", 4, "MARKET", "FILLED")]
    assert net_at_the_broker(account, stock) == 0
    rows = _late_fill_rows(bracket)
    assert rows[0] == waiting and len(rows) == 2
    assert rows[1] == (
        "its entry filled 4 more after the exit was asked for: squared off at once with a "
        "MARKET exit of 4"
    )
    place_protective_legs(account=account)  # and the next cycle leaves it so
    assert len(_late_fill_rows(bracket)) == 2
    bracket.refresh_from_db()
    assert bracket.status == "COMPLETED"


def test_a_waiting_late_fill_is_recorded_again_only_when_the_entry_fills_more(simulator, settings):
    _user, account, stock, bracket = _late_fill_after_a_position_exit(simulator, settings)
    # Neither the positions nor the entry's cancel go through: the entry keeps filling.
    simulator.set_faults(error_rate=1.0, routes=[SIM_POSITIONS_ROUTE, SIM_CANCEL_ROUTE])
    for _cycle in range(2):
        with pytest.raises(ProtectiveLegsIncomplete, match="not squared off yet"):
            place_protective_legs(account=account)
    assert len(_late_fill_rows(bracket)) == 1

    sync_from_broker(account)  # the entry fills its last 2: 6 late now
    for _cycle in range(2):
        with pytest.raises(ProtectiveLegsIncomplete, match="not squared off yet"):
            place_protective_legs(account=account)

    rows = _late_fill_rows(bracket)
    assert len(rows) == 2
    assert "filled 4 more" in rows[0] and "filled 6 more" in rows[1]
    simulator.set_faults(error_rate=0.0)
    place_protective_legs(account=account)
    sync_from_broker(account)
    assert _exits(bracket)[-1] == ("SELL", 6, "MARKET", "FILLED")
    assert net_at_the_broker(account, stock) == 0
    assert len(_late_fill_rows(bracket)) == 3
