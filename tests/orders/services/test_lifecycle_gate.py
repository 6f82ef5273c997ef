"""The leg lifecycle's gate, through the real writers: the sync, a cancel, placement. A move
the table refuses leaves the leg as it was and is recorded as an illegal_transition event;
the moves it allows (a fill that raced our cancel) are applied."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from orders.brokers.base import BrokerOrderRow
from orders.domain.vocabulary import EventKind, LegStatus
from orders.models import Order, OrderEvent, OrderLeg
from orders.services import cancel_order, place_single_order, sync_account_orders
from orders.services.changes import cancel_leg
from tests.factories import broker_order_row, single_request

D = Decimal
ROOT = Path(__file__).resolve().parents[3]


def _row(leg: OrderLeg, status: str, filled: int, raw: str) -> BrokerOrderRow:
    return broker_order_row(
        broker_order_id=leg.broker_order_id,
        uid=leg.unique_identifier,
        status=status,
        filled=filled,
        raw_status=raw,
        symbol="RELIANCE",
    )


def _placed_leg(trader, account) -> tuple[Order, OrderLeg]:
    """BUY 10 at 99 with the market at 100: resting OPEN at the paper exchange."""
    order = place_single_order(user=trader, request=single_request(account)).order
    leg = order.legs.get()
    assert leg.status == LegStatus.OPEN and leg.broker_order_id
    return order, leg


def _illegal(leg: OrderLeg) -> list[OrderEvent]:
    return list(OrderEvent.objects.filter(leg=leg, kind=EventKind.ILLEGAL_TRANSITION))


def test_a_cancelled_row_for_a_rejected_leg_leaves_it_rejected_and_is_recorded_once(
    trader, account, instrument
):
    order, leg = _placed_leg(trader, account)
    OrderLeg.objects.filter(pk=leg.pk).update(status=LegStatus.REJECTED, reject_reason="RMS")
    row = _row(leg, LegStatus.CANCELLED, 0, "Cancelled")

    sync_account_orders(account=account, order_book=[row])
    leg.refresh_from_db()
    assert (leg.status, leg.reject_reason) == (LegStatus.REJECTED, "RMS")
    [refusal] = _illegal(leg)
    assert refusal.before["status"] == LegStatus.REJECTED
    assert refusal.after["event"] == "reported_cancelled"
    assert refusal.after["source"] == "sync" and refusal.after["raw_status"] == "Cancelled"
    assert refusal.order_id == order.pk and refusal.actor == "monitoring"

    # The same row a minute later is the same news: not recorded again.
    sync_account_orders(account=account, order_book=[row])
    assert len(_illegal(leg)) == 1
    assert not OrderEvent.objects.filter(leg=leg, kind=EventKind.LEG_SYNCED).exists()


def test_a_fill_arriving_after_our_cancel_is_applied(trader, account, instrument):
    order, leg = _placed_leg(trader, account)
    cancel_order(order=order, actor="user:1")
    leg.refresh_from_db()
    assert leg.status == LegStatus.CANCELLED

    sync_account_orders(account=account, order_book=[_row(leg, LegStatus.FILLED, 10, "Filled")])
    leg.refresh_from_db()
    order.refresh_from_db()
    assert (leg.status, leg.filled_quantity) == (LegStatus.FILLED, 10)
    assert (order.status, order.filled_quantity) == (Order.Status.FILLED, 10)
    assert not _illegal(leg)


def test_a_late_partial_fill_keeps_the_cancelled_leg_cancelled_with_its_fills(
    trader, account, instrument
):
    order, leg = _placed_leg(trader, account)
    cancel_order(order=order, actor="user:1")
    row = _row(leg, LegStatus.PARTIALLY_FILLED, 4, "PartiallyFilled")
    sync_account_orders(account=account, order_book=[row])
    leg.refresh_from_db()
    assert (leg.status, leg.filled_quantity) == (LegStatus.CANCELLED, 4)
    assert OrderEvent.objects.filter(leg=leg, kind=EventKind.LEG_SYNCED).exists()
    assert not _illegal(leg)


def test_a_stale_open_row_never_reopens_a_filled_leg_and_is_recorded(trader, account, instrument):
    order, leg = _placed_leg(trader, account)
    OrderLeg.objects.filter(pk=leg.pk).update(status=LegStatus.FILLED, filled_quantity=10)
    sync_account_orders(account=account, order_book=[_row(leg, LegStatus.OPEN, 0, "New")])
    leg.refresh_from_db()
    assert (leg.status, leg.filled_quantity) == (LegStatus.FILLED, 10)
    [refusal] = _illegal(leg)
    assert refusal.after["event"] == "reported_open"


def test_a_cancel_confirmed_after_the_leg_filled_leaves_it_filled(trader, account, instrument):
    """The sync saw the fill while our cancel was on its way: the cancel's writer works
    from the locked row, not from the leg it read before the broker call."""
    order, stale_leg = _placed_leg(trader, account)
    OrderLeg.objects.filter(pk=stale_leg.pk).update(status=LegStatus.FILLED, filled_quantity=10)

    error = cancel_leg(
        order=order,
        leg=stale_leg,
        actor="user:1",
        kind=EventKind.LEG_CANCELLED,
        failed_kind=EventKind.LEG_CANCELLED_FAILED,
        raise_errors=True,
    )
    assert error is None
    leg = OrderLeg.objects.get(pk=stale_leg.pk)
    assert (leg.status, leg.filled_quantity) == (LegStatus.FILLED, 10)
    [refusal] = _illegal(leg)
    assert refusal.after["event"] == "cancel_confirmed" and refusal.after["source"] == "cancel"
    assert not OrderEvent.objects.filter(leg=leg, kind=EventKind.LEG_CANCELLED).exists()


def test_every_audit_event_written_by_placement_has_a_known_kind(trader, account, instrument):
    order, _leg = _placed_leg(trader, account)
    kinds = set(order.events.values_list("kind", flat=True))
    assert kinds == {EventKind.ORDER_CREATED, EventKind.LEG_ACCEPTED}


_STATUS_WRITE = re.compile(
    r"(\bleg\w*\.status\s*=(?!=))"  # leg.status = ..., legs[0].status = ...
    r"|(OrderLeg\.objects[^\n]*\.update\([^)]*\bstatus=)"  # a queryset update of legs
    r"|(\bstatus\s*=\s*(LegStatus|OrderLeg\.Status)\.)"  # status=LegStatus.X in a create
)
_READS = re.compile(r"\.(filter|exclude|get)\(")


def test_only_the_lifecycle_gate_assigns_a_leg_status():
    """A writer that sets a leg's status by hand would bypass the table: none may."""
    offenders = []
    for app in ("orders", "monitoring", "pnl", "accounts", "trading_site"):
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts or path.name == "lifecycle.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#")[0]
                if _STATUS_WRITE.search(code) and not _READS.search(code):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
