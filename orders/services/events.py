"""A broker event applied to the account's legs at once (the leg-level half of the handler).

`apply_broker_events` takes a run of one account's `orders.brokers.events.BrokerEvent`s
(order-book rows, trades, positions) and applies them the way the monitoring sync applies
the order book (`apply_report`), row by row in order: stored in the snapshot tables, then
through the leg lifecycle gate with their audit rows and the owner's order_update. It tells the caller what moved, so the caller
(`monitoring.events.handle_broker_event`, which holds the account's exclusion) can protect
the fills, apply one-cancels-other and update the PnL at once.

Idempotent and order-insensitive: a report is cumulative (its filled quantity is the leg's
total), fills only grow, a report older than what the leg shows (a PartiallyFilled after the
Filled, an answer after the stream) is old news and changes nothing, and a trade is stored
once by its order and execution id. An event about an order the desk did not place is
stored and otherwise ignored (logged once).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import BrokerAccount
from orders.brokers.base import BrokerOrderRow, BrokerTradeRow
from orders.brokers.events import BrokerEvent, BrokerEventKind
from orders.domain.lifecycle import LegEvent, LegEventKind
from orders.domain.vocabulary import EventKind
from orders.models import BrokerTrade, Order, OrderEvent, OrderLeg
from orders.selectors import orders_by_id, with_legs
from orders.services.account_lock import conflicts_are_busy, lock_account_row
from orders.services.audit import leg_change, leg_state, record_changes
from orders.services.exclusion import fence
from orders.services.lifecycle import apply_leg_event
from orders.services.sync import (
    LEG_SYNC_FIELDS,
    apply_report,
    is_stale_report,
    roll_up,
    store_event_rows,
)
from trading_site.core.prepared import PreparedModels, PreparedRows

logger = logging.getLogger("orders.events")

EVENT_ACTOR = "broker-event"
_UNKNOWN_LOG_SECONDS = 24 * 3600


@dataclass
class EventEffect:
    """What one event changed."""

    order_ids: list[int] = field(default_factory=list)  # orders whose legs moved
    filled_order_ids: list[int] = field(default_factory=list)  # ... with new fills
    # The orders whose legs moved, with all their legs, as rolled up and committed (what
    # protection judges first, before it locks any: `protect_orders`).
    orders: list[tuple[Order, list[OrderLeg]]] = field(default_factory=list)
    new_trades: int = 0
    unknown: bool = False
    stale: bool = False
    positions_changed: bool = False  # a position row was stored

    @property
    def fills_changed(self) -> bool:
        return bool(self.filled_order_ids or self.new_trades)


def apply_broker_events(
    *, account: BrokerAccount, events: Sequence[BrokerEvent], actor: str = EVENT_ACTOR
) -> EventEffect:
    """Apply a run of `account`'s ORDER, TRADE and POSITION events, in order, as one (other
    kinds, CONNECTED and LOGOUT, change no leg: the stream side handles them), in one
    transaction: every row stored, then the legs they name locked together and each event
    applied to its leg in turn (so the audit trail keeps every step), each changed leg
    written once, the audit rows in one INSERT and the touched orders rolled up once. The
    same as applying them one by one, in a fraction of the round trips (a burst of fills
    queues runs)."""
    rows: list[tuple[BrokerEvent, BrokerOrderRow | BrokerTradeRow]] = []
    orders: list[BrokerOrderRow] = []
    trades: list[BrokerTradeRow] = []
    positions = []
    for event in events:
        if event.kind == BrokerEventKind.ORDER and event.order is not None:
            orders.append(event.order)
            rows.append((event, event.order))
        elif event.kind == BrokerEventKind.TRADE and event.trade is not None:
            trades.append(event.trade)
            rows.append((event, event.trade))
        elif event.kind == BrokerEventKind.POSITION and event.position is not None:
            positions.append(event.position)
    effect = EventEffect(positions_changed=bool(positions))
    if not (orders or trades or positions):
        return effect
    # A lock conflict rolls the run back whole: RowsBusy, and the dispatcher applies it
    # again (idempotent: see the module docstring), ahead of the account's later events.
    with conflicts_are_busy(account.pk, work="broker events"), transaction.atomic():
        # Legs to change: the account row first, in share mode (the lock order:
        # orders.services.account_lock), so a PnL run or a sync holding it finishes first.
        if rows:
            lock_account_row(account.pk, exclusive=False)
        effect.new_trades = store_event_rows(
            account=account, orders=orders, trades=trades, positions=positions
        )
        if not rows:
            return effect
        legs = _find_legs(account, [row for _, row in rows])
        known = [
            (event, row, legs[index]) for index, (event, row) in enumerate(rows) if index in legs
        ]
        for index, (_event, row) in enumerate(rows):
            if index not in legs:
                kind = "order" if isinstance(row, BrokerOrderRow) else "trade"
                _note_unknown(account, str(row.broker_order_id), kind)
                effect.unknown = True
        if known:
            _apply_to_legs(account, known, actor=actor, effect=effect)
    return effect


def _legs_named(
    *, account_id: int, identifiers: list[str] | None = None, broker_ids: list[str] | None = None
) -> QuerySet[OrderLeg]:
    named = Q()  # the caller names at least one of the two
    if identifiers is not None:
        named |= Q(unique_identifier__in=identifiers)
    if broker_ids is not None:
        named |= Q(broker_order_id__in=broker_ids)
    # Locked here, in id order (as `lock_legs` locks), read once: the run's legs as the
    # database holds them, till its commit.
    return (
        OrderLeg.objects.select_for_update()
        .filter(account_id=account_id)
        .filter(named)
        .order_by("id")
    )


# Read by every broker event: compiled once per shape (which of the two lists it names).
_LEGS_NAMED_FOR_UPDATE = PreparedModels(OrderLeg, _legs_named)


def _find_legs(
    account: BrokerAccount, rows: Sequence[BrokerOrderRow | BrokerTradeRow]
) -> dict[int, OrderLeg]:
    """Row index -> the leg it reports on: by orderUniqueIdentifier, else by the broker's
    order id, the latest leg for either (one query for the run, which locks the legs it
    reads (inside the run's transaction); one object per leg, so events about the same leg
    apply one after the other)."""
    identifiers = {row.unique_identifier for row in rows if row.unique_identifier}
    broker_ids = {str(row.broker_order_id) for row in rows if row.broker_order_id}
    if not identifiers and not broker_ids:
        return {}
    by_identifier: dict[str, OrderLeg] = {}
    by_broker_id: dict[str, OrderLeg] = {}
    named = {"identifiers": sorted(identifiers)} if identifiers else {}
    if broker_ids:
        named["broker_ids"] = sorted(broker_ids)
    for leg in _LEGS_NAMED_FOR_UPDATE(account_id=account.pk, **named):  # in id order:
        if leg.unique_identifier in identifiers:  # the latest leg of each id is the last
            by_identifier[leg.unique_identifier] = leg
        if leg.broker_order_id in broker_ids:
            by_broker_id[leg.broker_order_id] = leg
    fence(account.pk)  # the legs are locked: a holder whose exclusion ended writes nothing
    found: dict[int, OrderLeg] = {}
    for index, row in enumerate(rows):
        match = by_identifier.get(row.unique_identifier) if row.unique_identifier else None
        if match is None and row.broker_order_id:
            match = by_broker_id.get(str(row.broker_order_id))
        if match is not None:
            found[index] = match
    return found


def _note_unknown(account: BrokerAccount, broker_order_id: str, what: str) -> None:
    """An order the desk did not place (typed at the broker's own terminal): stored, not
    acted on; logged the first time it is seen."""
    key = f"events:unknown:{account.pk}:{broker_order_id}"
    try:
        first = cache.add(key, 1, timeout=_UNKNOWN_LOG_SECONDS)
    except Exception:  # a cache outage logs it again; it must not roll back the run
        first = True
    if first:
        logger.info(
            "broker event for an order the desk did not place: stored, not acted on",
            extra={"account_id": account.pk, "broker_order_id": broker_order_id, "what": what},
        )


@dataclass
class _RunState:
    """What applying a run's rows to its legs collected, written once at the end."""

    changed_legs: dict[int, OrderLeg] = field(default_factory=dict)
    audit: list[OrderEvent] = field(default_factory=list)

    def changed(self, leg: OrderLeg) -> None:
        leg.updated_at = timezone.now()
        self.changed_legs[leg.pk] = leg


def _apply_to_legs(
    account: BrokerAccount,
    known: list[tuple[BrokerEvent, BrokerOrderRow | BrokerTradeRow, OrderLeg]],
    *,
    actor: str,
    effect: EventEffect,
) -> None:
    """Inside the caller's transaction (`apply_broker_events`)."""
    legs = list({leg.pk: leg for _, _, leg in known}.values())  # locked by `_find_legs`
    state = _RunState()
    orders = orders_by_id([leg.order_id for leg in legs])
    for leg in legs:
        leg.order = orders[leg.order_id]
    traded = _trades_of(
        account,
        {leg.broker_order_id for leg in legs if leg.broker_order_id}
        | {str(row.broker_order_id) for _, row, _ in known if isinstance(row, BrokerTradeRow)},
    )
    for event, row, leg in known:
        filled_before = leg.filled_quantity
        if isinstance(row, BrokerOrderRow):
            moved = _apply_order_row(leg, row, actor=actor, source=event.source, state=state)
        else:
            moved = _apply_trade_row(
                leg, row, actor=actor, source=event.source, state=state, traded=traded
            )
        if moved is None:
            effect.stale = True
        elif moved:
            if leg.order_id not in effect.order_ids:
                effect.order_ids.append(leg.order_id)
            if leg.filled_quantity > filled_before and leg.order_id not in (
                effect.filled_order_ids
            ):
                effect.filled_order_ids.append(leg.order_id)
    for leg in state.changed_legs.values():
        leg.save(update_fields=LEG_SYNC_FIELDS)
    record_changes(state.audit)
    # The moved orders (read above, in this transaction) with their legs as now written.
    effect.orders = with_legs([orders[order_id] for order_id in sorted(effect.order_ids)])
    roll_up(effect.orders, actor=actor)


def _apply_order_row(
    leg: OrderLeg, row: BrokerOrderRow, *, actor: str, source: str, state: _RunState
) -> bool | None:
    """One order-book row onto its locked leg (in memory). None for old news, else whether
    the leg's state moved (a refused report and a raw-status-only change are written but
    move nothing)."""
    if is_stale_report(leg, row):
        return None
    report = apply_report(
        leg,
        row,
        actor=actor,
        message=f"broker event ({source}): status {row.raw_status or row.status}",
    )
    if report.write:
        state.changed(leg)
    if report.audit is not None:
        state.audit.append(report.audit)
    return report.moved


_TRADES_OF_ORDERS = PreparedRows(
    tuple,
    lambda *, account_id, broker_order_ids: BrokerTrade.objects.filter(
        account_id=account_id, broker_order_id__in=broker_order_ids
    ).values_list("broker_order_id", "quantity", "price"),
)


def _trades_of(
    account: BrokerAccount, broker_order_ids: set[str]
) -> dict[str, tuple[int, Decimal | None]]:
    """Per broker order id: its total traded quantity and average price from the stored
    trades (one query for the run)."""
    rows: dict[str, list[tuple[int, Decimal]]] = {}
    if broker_order_ids:
        for broker_order_id, quantity, price in _TRADES_OF_ORDERS(
            account_id=account.pk, broker_order_ids=sorted(broker_order_ids)
        ):
            rows.setdefault(broker_order_id, []).append((quantity, price))
    totals: dict[str, tuple[int, Decimal | None]] = {}
    for broker_order_id, trades in rows.items():
        total = sum(quantity for quantity, _ in trades)
        value = sum((Decimal(quantity) * price for quantity, price in trades), Decimal("0"))
        totals[broker_order_id] = (
            (total, (value / total).quantize(Decimal("0.0001"))) if total else (0, None)
        )
    return totals


def _apply_trade_row(
    leg: OrderLeg,
    row: BrokerTradeRow,
    *,
    actor: str,
    source: str,
    state: _RunState,
    traded: dict[str, tuple[int, Decimal | None]],
) -> bool:
    """One trade onto its locked leg (in memory): the leg's fills become the order's total
    traded quantity when that is more than it holds. Returns whether the leg moved."""
    if row.quantity is None or row.price is None:
        return False  # unreadable: not a fill (store_event_rows left it out too)
    if not leg.broker_order_id and row.broker_order_id:
        leg.broker_order_id = str(row.broker_order_id)[:40]
    total, average = traded.get(leg.broker_order_id or str(row.broker_order_id), (0, None))
    if total <= leg.filled_quantity:
        return False  # the order book (or this trade, before) told us already
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
        state.audit.append(transition.refusal)
        return False
    if average is not None:
        leg.average_price = average
    state.changed(leg)
    state.audit.append(
        leg_change(
            leg.order,
            leg,
            kind=EventKind.LEG_SYNCED,
            actor=actor,
            message=f"broker event ({source}): trade {row.execution_id}, "
            f"{row.quantity} at {row.price}",
            before=before,
        )
    )
    return True
