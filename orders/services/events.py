"""A broker event applied to the account's legs at once (the leg-level half of the handler).

`apply_broker_event` takes one `orders.brokers.events.BrokerEvent` (an order-book row, a
trade, a position) and applies it the way the monitoring sync applies the order book, for
that one row: stored in the snapshot tables, then through the leg lifecycle gate with its
audit row and the owner's order_update. It tells the caller what moved, so the caller
(`monitoring.events.handle_broker_event`, which holds the account's exclusion) can protect
the fills, apply one-cancels-other and update the PnL at once.

Idempotent and order-insensitive: a report is cumulative (its filled quantity is the leg's
total), fills only grow, a report older than what the leg shows (a PartiallyFilled after the
Filled, an answer after the stream) is old news and changes nothing, and a trade is stored
once by its execution id. An event about an order the desk did not place is stored and
otherwise ignored (logged once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.models import BrokerAccount
from orders.brokers.base import BrokerOrderRow, BrokerTradeRow
from orders.brokers.events import BrokerEvent, BrokerEventKind
from orders.domain.lifecycle import LegEvent, LegEventKind
from orders.domain.vocabulary import EventKind
from orders.models import BrokerTrade, Order, OrderLeg
from orders.services.audit import leg_state, new_event, record_changes
from orders.services.lifecycle import apply_leg_event, lock_legs
from orders.services.sync import (
    LEG_SYNC_FIELDS,
    apply_book_row,
    is_stale_report,
    roll_up_orders,
    store_event_rows,
)

logger = logging.getLogger("orders.events")

EVENT_ACTOR = "broker-event"
_UNKNOWN_LOG_SECONDS = 24 * 3600


@dataclass
class EventEffect:
    """What one event changed."""

    order_ids: list[int] = field(default_factory=list)  # orders whose legs moved
    filled_order_ids: list[int] = field(default_factory=list)  # ... with new fills
    new_trades: int = 0
    unknown: bool = False
    stale: bool = False
    positions_changed: bool = False  # a position row was stored

    @property
    def fills_changed(self) -> bool:
        return bool(self.filled_order_ids or self.new_trades)


def apply_broker_event(
    *, account: BrokerAccount, event: BrokerEvent, actor: str = EVENT_ACTOR
) -> EventEffect:
    """Apply one ORDER, TRADE or POSITION event of `account` (see the module docstring).
    Other kinds (CONNECTED, LOGOUT) change no leg: the stream side handles them."""
    if event.kind == BrokerEventKind.ORDER and event.order is not None:
        return _apply_order_row(account, event.order, actor=actor, source=event.source)
    if event.kind == BrokerEventKind.TRADE and event.trade is not None:
        return _apply_trade_row(account, event.trade, actor=actor, source=event.source)
    if event.kind == BrokerEventKind.POSITION and event.position is not None:
        store_event_rows(account=account, positions=[event.position])
        return EventEffect(positions_changed=True)
    return EventEffect()


def _find_leg(
    account: BrokerAccount, unique_identifier: str, broker_order_id: str
) -> OrderLeg | None:
    legs = OrderLeg.objects.filter(account=account)
    leg = None
    if unique_identifier:
        leg = legs.filter(unique_identifier=unique_identifier).order_by("-id").first()
    if leg is None and broker_order_id:
        leg = legs.filter(broker_order_id=str(broker_order_id)).order_by("-id").first()
    return leg


def _note_unknown(account: BrokerAccount, broker_order_id: str, what: str) -> EventEffect:
    """An order the desk did not place (typed at the broker's own terminal): stored, not
    acted on; logged the first time it is seen."""
    key = f"events:unknown:{account.pk}:{broker_order_id}"
    if cache.add(key, 1, timeout=_UNKNOWN_LOG_SECONDS):
        logger.info(
            "broker event for an order the desk did not place: stored, not acted on",
            extra={"account_id": account.pk, "broker_order_id": broker_order_id, "what": what},
        )
    return EventEffect(unknown=True)


def _locked(leg: OrderLeg) -> OrderLeg:
    lock_legs([leg])
    leg.order = Order.objects.get(pk=leg.order_id)
    return leg


def _apply_order_row(
    account: BrokerAccount, row: BrokerOrderRow, *, actor: str, source: str
) -> EventEffect:
    store_event_rows(account=account, orders=[row])
    found = _find_leg(account, row.unique_identifier, row.broker_order_id)
    if found is None:
        return _note_unknown(account, str(row.broker_order_id), "order")
    effect = EventEffect()
    with transaction.atomic():
        leg = _locked(found)
        if is_stale_report(leg, row):
            effect.stale = True
            return effect
        before, reason_before = leg_state(leg), leg.reject_reason
        changed, refusal = apply_book_row(leg, row, actor=actor)
        if refusal is not None:
            leg.updated_at = timezone.now()
            leg.save(update_fields=LEG_SYNC_FIELDS)
            record_changes([refusal])
            return effect
        if not changed:
            return effect
        leg.updated_at = timezone.now()
        leg.save(update_fields=LEG_SYNC_FIELDS)
        after = leg_state(leg)
        if after == before and leg.reject_reason == reason_before:
            return effect  # only the broker's raw status text moved
        record_changes(
            [
                new_event(
                    order=leg.order,
                    leg=leg,
                    kind=EventKind.LEG_SYNCED,
                    actor=actor,
                    message=f"broker event ({source}): status {row.raw_status or row.status}",
                    before=before,
                    after=after,
                )
            ]
        )
        roll_up_orders(order_ids=[leg.order_id], actor=actor)
    effect.order_ids = [leg.order_id]
    if leg.filled_quantity > before["filled_quantity"]:
        effect.filled_order_ids = [leg.order_id]
    return effect


def _trades_of(account: BrokerAccount, broker_order_id: str) -> tuple[int, Decimal | None]:
    """The order's total traded quantity and average price from the stored trades."""
    trades = list(
        BrokerTrade.objects.filter(account=account, broker_order_id=broker_order_id).values_list(
            "quantity", "price"
        )
    )
    total = sum(quantity for quantity, _ in trades)
    if not total:
        return 0, None
    value = sum((Decimal(quantity) * price for quantity, price in trades), Decimal("0"))
    return total, (value / total).quantize(Decimal("0.0001"))


def _apply_trade_row(
    account: BrokerAccount, row: BrokerTradeRow, *, actor: str, source: str
) -> EventEffect:
    new_trades = store_event_rows(account=account, trades=[row])
    found = _find_leg(account, row.unique_identifier, row.broker_order_id)
    if found is None:
        effect = _note_unknown(account, str(row.broker_order_id), "trade")
        effect.new_trades = new_trades
        return effect
    effect = EventEffect(new_trades=new_trades)
    if row.quantity is None or row.price is None:
        return effect  # unreadable: not a fill (store_event_rows left it out too)
    with transaction.atomic():
        leg = _locked(found)
        if not leg.broker_order_id and row.broker_order_id:
            leg.broker_order_id = str(row.broker_order_id)[:40]
        total, average = _trades_of(account, leg.broker_order_id or str(row.broker_order_id))
        if total <= leg.filled_quantity:
            return effect  # the order book (or this trade, before) told us already
        before = leg_state(leg)
        transition = apply_leg_event(
            leg,
            LegEvent(LegEventKind.FILL, filled_quantity=total),
            actor=actor,
            source="trade",
            order=leg.order,
            detail={"execution_id": row.execution_id},
        )
        if transition.refusal is not None:  # not applied
            record_changes([transition.refusal])
            return effect
        if average is not None:
            leg.average_price = average
        leg.updated_at = timezone.now()
        leg.save(update_fields=LEG_SYNC_FIELDS)
        record_changes(
            [
                new_event(
                    order=leg.order,
                    leg=leg,
                    kind=EventKind.LEG_SYNCED,
                    actor=actor,
                    message=f"broker event ({source}): trade {row.execution_id}, "
                    f"{row.quantity} at {row.price}",
                    before=before,
                    after=leg_state(leg),
                )
            ]
        )
        roll_up_orders(order_ids=[leg.order_id], actor=actor)
    effect.order_ids = [leg.order_id]
    effect.filled_order_ids = [leg.order_id]
    return effect
