"""Exit one position or all of an account's: MARKET orders for the net quantity through the
write-ahead path, split at the freeze quantity, the brackets holding it stripped of their
working legs first, every step audited; double exits and strangers refused."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import Broker
from orders.models import Order, OrderEvent, OrderLeg
from orders.positions.services import exit_positions
from orders.services import place_protective_legs
from tests.factories import (
    api_client_for,
    buy_and_sync,
    buy_at_market,
    exit_body,
    make_account,
    make_fair_price,
    make_instrument,
    make_reliance_at_100,
    make_user,
    place_protected_bracket,
    sync_positions,
    xts_protected_bracket,
)

D = Decimal
pytestmark = pytest.mark.django_db
POSITIONS_ROUTE = "GET /interactive/portfolio/positions"


def net_of(client, instrument) -> int:
    rows = client.get("/api/positions").json()["accounts"][0]["positions"]
    return sum(r["net_qty"] for r in rows if r["trading_symbol"] == instrument.trading_symbol)


def test_exit_squares_off_the_net_quantity_with_an_audited_market_order(
    client, account, instrument
):
    buy_and_sync(account, instrument, 7)
    answer = client.post("/api/positions/exit", exit_body(account, instrument), format="json")
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["complete"] is True
    [exit_id] = body["exit_order_ids"]
    exit_order = Order.objects.get(pk=exit_id)
    assert (exit_order.side, exit_order.quantity, exit_order.order_type) == ("SELL", 7, "MARKET")
    assert exit_order.external_id == "position-exit"
    # Written ahead, then sent: its creation and the broker's answer are in its trail.
    kinds = set(OrderEvent.objects.filter(order=exit_order).values_list("kind", flat=True))
    assert {"order_created", "leg_accepted"} <= kinds
    account_kinds = list(
        OrderEvent.objects.filter(account=account, order__isnull=True)
        .order_by("id")
        .values_list("kind", flat=True)
    )
    assert account_kinds == ["positions_exit_requested", "positions_exit_sent"]
    sync_positions(account)
    assert net_of(client, instrument) == 0


def test_an_exit_larger_than_the_freeze_quantity_is_split(trader, client, account):
    small = make_instrument(symbol="FRZ", freeze_quantity=5)
    make_fair_price(small, "50")
    buy_at_market(account, small, 5)
    buy_at_market(account, small, 5)
    buy_at_market(account, small, 2)
    sync_positions(account)
    body = client.post("/api/positions/exit", exit_body(account, small), format="json").json()
    quantities = sorted(
        Order.objects.filter(pk__in=body["exit_order_ids"]).values_list("quantity", flat=True)
    )
    assert quantities == [2, 5, 5]


def test_exiting_a_bracket_position_cancels_its_stop_loss_and_targets_first(
    trader, client, account
):
    inst = make_reliance_at_100()
    order = place_protected_bracket(user=trader, account=account, instrument=inst)
    protective = OrderLeg.objects.filter(order=order, role__in=["STOP_LOSS", "TAKE_PROFIT"])
    assert protective.filter(status="OPEN").count() == 3  # one SL, two targets
    sync_positions(account)

    body = client.post("/api/positions/exit", exit_body(account, inst), format="json").json()
    assert body["complete"] is True, body
    assert not protective.filter(status="OPEN").exists()
    assert len(body["cancelled_legs"]) == 3
    exit_leg = OrderLeg.objects.get(order=order, role="EXIT")
    assert (exit_leg.side, exit_leg.quantity, exit_leg.order_type) == ("SELL", 100, "MARKET")
    order.refresh_from_db()
    assert order.exit_requested_at is not None
    assert OrderEvent.objects.filter(order=order, kind="position_exit").exists()


def test_a_second_exit_while_the_first_is_still_working_sends_nothing(
    client, account, instrument, settings
):
    buy_and_sync(account, instrument, 4)
    settings.PAPER_FILL_CAP = 1  # the exit fills one share per tick: still working after
    first = client.post("/api/positions/exit", exit_body(account, instrument), format="json")
    orders_before = Order.objects.count()
    second = client.post("/api/positions/exit", exit_body(account, instrument), format="json")
    assert first.status_code == 200
    assert second.status_code == 409
    assert "still working" in second.json()["error"]
    assert Order.objects.count() == orders_before


def test_exiting_a_flat_position_is_a_conflict(client, account, instrument):
    answer = client.post("/api/positions/exit", exit_body(account, instrument), format="json")
    assert answer.status_code == 409
    assert "no open position" in answer.json()["error"]
    assert not Order.objects.exists()


def test_exit_all_needs_the_typed_confirmation(client, account, instrument):
    buy_and_sync(account, instrument, 2)
    wrong = client.post(
        "/api/positions/exit-all", {"account_id": account.pk, "confirm": "yes"}, format="json"
    )
    assert wrong.status_code == 400
    assert "confirm" in wrong.json()["details"]
    assert Order.objects.count() == 1
    right = client.post(
        "/api/positions/exit-all", {"account_id": account.pk, "confirm": "EXIT ALL"}, format="json"
    )
    assert right.status_code == 200
    assert Order.objects.filter(external_id="position-exit").count() == 1


def test_exit_all_closes_every_open_position_of_the_account(trader, client, account, instrument):
    other = make_instrument(symbol="SECOND")
    make_fair_price(other, "20")
    buy_at_market(account, instrument, 2)
    buy_at_market(account, other, 3)
    sync_positions(account)
    body = client.post(
        "/api/positions/exit-all", {"account_id": account.pk, "confirm": "EXIT ALL"}, format="json"
    ).json()
    assert len(body["exit_order_ids"]) == 2
    sync_positions(account)
    rows = client.get("/api/positions").json()["accounts"][0]["positions"]
    assert all(r["net_qty"] == 0 for r in rows)


def test_another_users_account_is_a_404_and_nothing_is_written(account, instrument):
    buy_and_sync(account, instrument, 2)
    stranger = api_client_for(make_user())
    events = OrderEvent.objects.count()
    one = stranger.post("/api/positions/exit", exit_body(account, instrument), format="json")
    every = stranger.post(
        "/api/positions/exit-all", {"account_id": account.pk, "confirm": "EXIT ALL"}, format="json"
    )
    assert (one.status_code, every.status_code) == (404, 404)
    assert OrderEvent.objects.count() == events
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    "change",
    [
        {"product_type": "XYZ"},
        {"exchange_segment": "MOON"},
        {"exchange_instrument_id": "abc"},
        {"account_id": None},
    ],
)
def test_a_bad_exit_request_is_a_400(client, account, instrument, change):
    body = {**exit_body(account, instrument), **change}
    body = {k: v for k, v in body.items() if v is not None}
    answer = client.post("/api/positions/exit", body, format="json")
    assert answer.status_code == 400
    assert answer.json()["code"] == "VALIDATION_ERROR"


def test_a_live_account_outside_the_trading_window_cannot_exit(
    trader, client, settings, instrument
):
    settings.TRADING_WINDOW_ALWAYS_OPEN = False
    settings.TRADING_WEEKDAYS = []
    live = make_account(user=trader, broker=Broker.IIFL)
    answer = client.post("/api/positions/exit", exit_body(live, instrument), format="json")
    assert answer.status_code == 409
    assert answer.json()["code"] == "MARKET_CLOSED"


def test_an_exit_that_sent_nothing_leaves_the_bracket_protected_again(simulator, settings):
    # The bracket's stop-loss and target were cancelled first, then the broker's positions
    # could not be read: nothing was sent, and the bracket, still marked exit-requested,
    # was never protected again: the position stayed open without any stop-loss.
    user, account, _stock, bracket = xts_protected_bracket(simulator, settings)
    simulator.set_faults(error_rate=1.0, routes=[POSITIONS_ROUTE])
    result = exit_positions(account=account, actor=f"user:{user.pk}")
    assert any("positions unavailable, nothing squared off" in error for error in result.errors)
    assert not bracket.legs.filter(role=OrderLeg.Role.EXIT).exists()

    simulator.set_faults(error_rate=0.0, routes=[])
    place_protective_legs(account=account)  # the next cycle's step 4
    working = bracket.legs.filter(status=OrderLeg.Status.OPEN)
    assert sorted(working.values_list("role", "quantity")) == [
        (OrderLeg.Role.STOP_LOSS, 10),
        (OrderLeg.Role.TAKE_PROFIT, 10),
    ]
