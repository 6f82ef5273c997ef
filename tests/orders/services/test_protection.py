"""Monitoring step 4: SL/TP legs for the filled quantity, one-cancels-other, completion."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.utils import timezone

from orders.brokers.paper.models import PaperOrder
from orders.models import Order, OrderLeg
from orders.selectors import orders_with_legs
from orders.services import modify_order, place_bracket_order, place_protective_legs, plan_exits
from orders.services.protection import brackets_to_protect, is_bracket_to_protect
from orders.validation import TargetSpec
from tests.factories import (
    bracket_request,
    legs_of,
    make_fair_price,
    make_leg,
    make_order,
    place_protected_bracket,
    sync_from_broker,
)

D = Decimal
SL, TP, ENTRY = OrderLeg.Role.STOP_LOSS, OrderLeg.Role.TAKE_PROFIT, OrderLeg.Role.ENTRY
EXIT = OrderLeg.Role.EXIT
OPEN_STATUSES = OrderLeg.OPEN_STATUSES


def _open_qty(legs) -> int:
    return sum(leg.quantity - leg.filled_quantity for leg in legs if leg.status in OPEN_STATUSES)


def _filled_bracket(trader, account, instrument, **overrides) -> Order:
    """A bracket whose entry filled completely, protected by one SL and the TP legs."""
    order = place_protected_bracket(
        user=trader, account=account, instrument=instrument, **overrides
    )
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED
    return order


def test_bracket_placement_sends_only_the_entry(trader, account, instrument):
    order = place_bracket_order(user=trader, request=bracket_request(account)).order
    (entry,) = legs_of(order)
    assert (entry.role, entry.status, entry.quantity) == (ENTRY, OrderLeg.Status.OPEN, 100)
    assert order.sl_price == D("95.00") and order.sl_stop_price == D("95.50")
    assert order.targets == [{"price": "105", "quantity": 50}, {"price": "110", "quantity": 50}]
    assert PaperOrder.objects.count() == 1


def _bracket_filled_30(trader, account, instrument, settings) -> Order:
    """A bracket of 100 whose entry has filled 30 (fills capped at 30 a price move), synced."""
    settings.PAPER_FILL_CAP = 30
    order = place_bracket_order(user=trader, request=bracket_request(account)).order
    make_fair_price(instrument, "98.90")
    sync_from_broker(account)
    return order


def test_a_partial_fill_is_protected_at_once_for_exactly_the_filled_quantity(
    trader, account, instrument, settings
):
    order = _bracket_filled_30(trader, account, instrument, settings)
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == (Order.Status.PARTIALLY_FILLED, 30)

    place_protective_legs(account=account)

    (sl,) = legs_of(order, SL)
    (tp,) = legs_of(order, TP)
    assert (sl.quantity, sl.order_type, sl.side) == (30, "STOPLIMIT", "SELL")
    assert (sl.stop_price, sl.limit_price) == (D("95.50"), D("95.00"))
    assert (tp.quantity, tp.limit_price, tp.target_index) == (30, D("105"), 0)
    assert sl.status == tp.status == OrderLeg.Status.OPEN and sl.broker_order_id
    paper = {p.unique_identifier: p.quantity for p in PaperOrder.objects.all()}
    assert paper[sl.unique_identifier] == 30 and paper[tp.unique_identifier] == 30


def test_later_fills_add_legs_for_the_newly_filled_quantity_only(
    trader, account, instrument, settings
):
    order = _bracket_filled_30(trader, account, instrument, settings)
    place_protective_legs(account=account)
    sync_from_broker(account)  # the entry fills 30 more: 60
    place_protective_legs(account=account)
    place_protective_legs(account=account)  # nothing new is uncovered: no duplicate legs

    assert sum(leg.quantity for leg in legs_of(order, SL)) == 60
    tps = legs_of(order, TP)
    by_target = {0: 0, 1: 0}
    for leg in tps:
        by_target[leg.target_index] += leg.quantity
    # Target 1 takes the first 50 filled, target 2 the next 10.
    assert by_target == {0: 50, 1: 10}
    assert len(legs_of(order, SL)) == 2


def test_later_fills_protect_at_the_target_price_the_trader_moved_to(
    trader, account, instrument, settings
):
    # The trader moved target 1 from 105 to 106 while the entry was part filled: the legs
    # later fills add for target 1 were still sent at 105 (stop-loss moves were followed).
    order = _bracket_filled_30(trader, account, instrument, settings)
    place_protective_legs(account=account)
    (tp,) = legs_of(order, TP)
    modify_order(order=order, actor=f"user:{trader.pk}", leg_id=tp.pk, limit_price=D("106"))
    sync_from_broker(account)  # the entry fills 30 more: 60
    place_protective_legs(account=account)

    prices = {(leg.target_index, leg.limit_price) for leg in legs_of(order, TP)}
    assert prices == {(0, D("106")), (1, D("110"))}
    order.refresh_from_db()
    assert [target["price"] for target in order.targets] == ["106", "110"]


def test_a_filled_target_cancels_the_stop_loss_and_completes_the_order(trader, account, instrument):
    order = _filled_bracket(
        trader, account, instrument, targets=[TargetSpec(price=D("105"), lots=100)]
    )
    (sl,) = legs_of(order, SL)
    assert sl.quantity == 100 and sl.status == OrderLeg.Status.OPEN

    make_fair_price(instrument, "105.50")
    sync_from_broker(account)  # the target fills
    place_protective_legs(account=account)

    sl.refresh_from_db()
    order.refresh_from_db()
    assert sl.status == OrderLeg.Status.CANCELLED
    assert PaperOrder.objects.get(unique_identifier=sl.unique_identifier).status == "CANCELLED"
    assert order.status == Order.Status.COMPLETED
    assert order.events.filter(kind="exit_cancelled").count() == 1


def test_a_partly_filled_target_reduces_the_stop_loss_to_the_open_position(
    trader, account, instrument, settings
):
    order = _filled_bracket(
        trader, account, instrument, targets=[TargetSpec(price=D("105"), lots=100)]
    )
    settings.PAPER_FILL_CAP = 30
    make_fair_price(instrument, "105.50")
    sync_from_broker(account)  # the target fills 30 of 100
    place_protective_legs(account=account)

    (sl,) = legs_of(order, SL)
    (tp,) = legs_of(order, TP)
    assert tp.filled_quantity == 30
    assert _open_qty([sl]) == 70 and sl.status == OrderLeg.Status.OPEN
    assert PaperOrder.objects.get(unique_identifier=sl.unique_identifier).quantity == 70
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED


def test_exits_never_close_more_than_the_open_position(trader, account, instrument, settings):
    order = _filled_bracket(trader, account, instrument)
    settings.PAPER_FILL_CAP = 20
    make_fair_price(instrument, "95.00")  # the stop-loss triggers and fills 20 per tick
    for _ in range(3):
        sync_from_broker(account)
        place_protective_legs(account=account)
        legs = legs_of(order)
        entry_filled = sum(leg.filled_quantity for leg in legs if leg.role == ENTRY)
        exited = sum(leg.filled_quantity for leg in legs if leg.role != ENTRY)
        position = entry_filled - exited
        assert _open_qty([leg for leg in legs if leg.role == SL]) <= position
        assert _open_qty([leg for leg in legs if leg.role == TP]) <= position
    assert exited == 60


def test_protection_skips_orders_whose_exit_was_requested(trader, account, instrument):
    order = place_bracket_order(user=trader, request=bracket_request(account)).order
    make_fair_price(instrument, "98.90")
    sync_from_broker(account)
    Order.objects.filter(pk=order.pk).update(exit_requested_at="2030-01-01T00:00:00Z")
    place_protective_legs(account=account)
    assert legs_of(order, SL) == [] and legs_of(order, TP) == []


# ---- the arithmetic alone ------------------------------------------------------------------


def _leg(role, quantity, filled=0, status="OPEN", target_index=None, pk=1, broker="B"):
    return SimpleNamespace(
        role=role,
        quantity=quantity,
        filled_quantity=filled,
        status=status,
        target_index=target_index,
        pk=pk,
        broker_order_id=broker,
    )


@pytest.mark.parametrize(
    ("legs", "targets", "expected_new", "expected_reductions"),
    [
        # Nothing filled: nothing to protect.
        ([_leg(ENTRY, 100)], [100], [], []),
        # 40 filled, no exits yet: SL 40 and target 1 takes 40.
        ([_leg(ENTRY, 100, 40, "PARTIALLY_FILLED")], [50, 50], [(SL, 40, None), (TP, 40, 0)], []),
        # 70 filled, SL 40 and TP1 40 working: 30 more of each (TP1 +10, TP2 +20).
        (
            [
                _leg(ENTRY, 100, 70, "PARTIALLY_FILLED", pk=1),
                _leg(SL, 40, pk=2),
                _leg(TP, 40, target_index=0, pk=3),
            ],
            [50, 50],
            [(SL, 30, None), (TP, 10, 0), (TP, 20, 1)],
            [],
        ),
        # Partly reduced (an exit of 10 filled, another of 10 working), then 70 filled: 60
        # open, 10 of them on their way out; SL 30 and TP1 30 working: 20 more of each.
        (
            [
                _leg(ENTRY, 100, 70, "PARTIALLY_FILLED", pk=1),
                _leg(EXIT, 10, 10, "FILLED", pk=2),
                _leg(EXIT, 10, pk=3),
                _leg(SL, 30, pk=4),
                _leg(TP, 30, target_index=0, pk=5),
            ],
            [50, 50],
            [(SL, 20, None), (TP, 20, 0)],
            [],
        ),
        # Entry filled, TP filled 30: SL reduced from 100 to 70 open.
        (
            [
                _leg(ENTRY, 100, 100, "FILLED", pk=1),
                _leg(SL, 100, pk=2),
                _leg(TP, 100, 30, "PARTIALLY_FILLED", target_index=0, pk=3),
            ],
            [100],
            [],
            [(2, 70)],
        ),
        # Entry filled, SL filled: the targets are cancelled.
        (
            [
                _leg(ENTRY, 100, 100, "FILLED", pk=1),
                _leg(SL, 100, 100, "FILLED", pk=2),
                _leg(TP, 50, target_index=0, pk=3),
                _leg(TP, 50, target_index=1, pk=4),
            ],
            [50, 50],
            [],
            [(4, 0), (3, 0)],
        ),
    ],
)
def test_plan_exits_covers_the_gap_and_trims_the_excess(
    legs, targets, expected_new, expected_reductions
):
    plan = plan_exits(legs=legs, target_quantities=targets, may_add=True)
    assert [(n.role, n.quantity, n.target_index) for n in plan.new_exits] == expected_new
    assert [(r.leg.pk, r.remaining) for r in plan.reductions] == expected_reductions


@pytest.mark.parametrize(
    ("legs", "exiting", "expected_new", "expected_reductions"),
    [
        # An exit of 10 split in two, one slice rejected, the other working: SL and target 1
        # for the rejected 5, not the 10.
        (
            [
                _leg(ENTRY, 10, 10, "FILLED", pk=1),
                _leg(EXIT, 5, pk=2),
                _leg(EXIT, 5, 0, "REJECTED", pk=3),
            ],
            5,
            [(SL, 5, None), (TP, 5, 0)],
            [],
        ),
        # The working slice filled: the SL and target of 5 cover the 5 open, nothing more.
        (
            [
                _leg(ENTRY, 10, 10, "FILLED", pk=1),
                _leg(EXIT, 5, 5, "FILLED", pk=2),
                _leg(EXIT, 5, 0, "REJECTED", pk=3),
                _leg(SL, 5, pk=4),
                _leg(TP, 5, target_index=0, pk=5),
            ],
            0,
            [],
            [],
        ),
        # A stop-loss of the whole 10 beside an exit of 5 working: trimmed to the other 5
        # (and target 1 given those 5).
        (
            [_leg(ENTRY, 10, 10, "FILLED", pk=1), _leg(EXIT, 5, pk=2), _leg(SL, 10, pk=3)],
            5,
            [(TP, 5, 0)],
            [(3, 5)],
        ),
        # The stop-loss filled while the slice works: its target is cancelled (the slice
        # closes the rest).
        (
            [
                _leg(ENTRY, 10, 10, "FILLED", pk=1),
                _leg(EXIT, 5, pk=2),
                _leg(SL, 5, 5, "FILLED", pk=3),
                _leg(TP, 5, target_index=0, pk=4),
            ],
            5,
            [],
            [(4, 0)],
        ),
    ],
)
def test_plan_exits_never_covers_what_exits_working_take(
    legs, exiting, expected_new, expected_reductions
):
    plan = plan_exits(legs=legs, target_quantities=[10], may_add=True, exit_requested=True)
    assert plan.exiting == exiting
    assert [(n.role, n.quantity, n.target_index) for n in plan.new_exits] == expected_new
    assert [(r.leg.pk, r.remaining) for r in plan.reductions] == expected_reductions


def test_a_bracket_to_protect_is_judged_in_memory_as_the_cycles_read_judges_it(account, instrument):
    # The broker event's protection judges the orders it just rolled up in memory
    # (`is_bracket_to_protect`); the cycle reads them (`brackets_to_protect`): for orders of
    # every kind, status and exit state, the two agree, and each side picks some and leaves
    # some.
    S = OrderLeg.Status
    exits = [None, (SL, S.OPEN), (TP, S.PARTIALLY_FILLED), (SL, S.CANCELLED), (TP, S.FILLED)]
    for kind in Order.Kind.values:
        for status in Order.Status.values:
            for exit_leg in exits:
                for archived in (False, True):
                    order = make_order(
                        account=account,
                        instrument=instrument,
                        status=status,
                        kind=kind,
                        archived_at=timezone.now() if archived else None,
                    )
                    if exit_leg is not None:
                        role, leg_status = exit_leg
                        make_leg(
                            order=order,
                            broker_order_id=None,
                            role=role,
                            side="SELL",
                            status=leg_status,
                        )
    read = orders_with_legs(
        list(Order.objects.filter(account=account).values_list("pk", flat=True))
    )
    in_memory = [order.pk for order, legs in read if is_bracket_to_protect(order, legs)]
    assert in_memory == brackets_to_protect([account.pk])[account.pk]
    assert 0 < len(in_memory) < len(read)
    picked = {(o.kind, o.status) for o, legs in read if o.pk in set(in_memory)}
    assert picked == {
        (Order.Kind.BRACKET, Order.Status.PARTIALLY_FILLED),
        (Order.Kind.BRACKET, Order.Status.FILLED),
        (Order.Kind.BRACKET, Order.Status.COMPLETED),  # only those with an exit working
    }
    working = {S.OPEN, S.PARTIALLY_FILLED}
    for order, legs in read:
        if order.pk in set(in_memory) and order.status == Order.Status.COMPLETED:
            assert any(leg.role != ENTRY and leg.status in working for leg in legs)
