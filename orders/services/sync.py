"""Monitoring steps 1 and 3: store the broker's snapshots, then bring our legs and orders in
line with them (and settle legs a crash or timeout left PENDING_SUBMIT)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import BrokerAccount
from orders.brokers.base import (
    BrokerBalance,
    BrokerOrderRow,
    BrokerPositionRow,
    BrokerTradeRow,
)
from orders.domain.lifecycle import LegEvent, LegEventKind, reported
from orders.domain.rollup import derive_order_status
from orders.domain.vocabulary import FINAL_LEG_STATUSES, EventKind, LegStatus
from orders.models import (
    MONEY,
    PRICE,
    BrokerOrder,
    BrokerPosition,
    BrokerTrade,
    Order,
    OrderEvent,
    OrderLeg,
)
from orders.positions.selectors import stored_positions
from orders.selectors import orders_with_legs
from orders.services.account_lock import lock_account_row
from orders.services.audit import (
    leg_change,
    leg_state,
    notify_order,
    order_state,
    record_change,
    record_changes,
)
from orders.services.exclusion import fence
from orders.services.lifecycle import apply_leg_event
from trading_site.core.bulk_rows import bulk_update_rows
from trading_site.core.prepared import PreparedRows

MONITORING_ACTOR = "monitoring"
LIVE_ORDER_STATUSES = (
    Order.Status.PENDING,
    Order.Status.OPEN,
    Order.Status.PARTIALLY_FILLED,
    Order.Status.FILLED,
)


def pending_grace_seconds() -> int:
    return int(getattr(settings, "ORDER_PENDING_GRACE_SECONDS", 120))


# ---- step 1: snapshots ----------------------------------------------------------------------


def _side(value: str) -> str:
    return (value or "").strip().upper()[:4]


def _count(value: int | None) -> int | None:
    """A quantity as stored: None (the broker's number was unreadable) stays None."""
    return None if value is None else max(0, int(value))


def _fitting(value: Decimal | None, shape: dict[str, Any]) -> Decimal | None:
    """A broker's figure as its column (MONEY or PRICE) can hold it, else None, as for an
    unreadable figure: more whole digits than the column has (an RMS "unlimited" such as
    999999999999999, a double's 1.79E+308) failed the write (DataError), and with it the
    account's every sync: no order, fill or protection synced again."""
    if value is None:
        return None
    whole_digits = shape["max_digits"] - shape["decimal_places"]
    return value if abs(value) < Decimal(10) ** whole_digits - 1 else None


def _broker_order_fields(row: BrokerOrderRow) -> dict:
    return {
        "exchange_order_id": (row.exchange_order_id or "")[:40],
        "client_id": (row.client_id or "")[:40],
        "exchange_segment": row.exchange_segment[:10],
        "exchange_instrument_id": int(row.exchange_instrument_id),
        "trading_symbol": (row.trading_symbol or "")[:100],
        "side": _side(row.side),
        "order_type": (row.order_type or "")[:10],
        "product_type": (row.product_type or "")[:4],
        "time_in_force": (row.time_in_force or "")[:8],
        "order_price": _fitting(row.limit_price, PRICE),
        "order_stop_price": _fitting(row.stop_price, PRICE),
        "order_quantity": _count(row.quantity),
        "cumulative_quantity": _count(row.filled_quantity),
        "leaves_quantity": _count(row.leaves_quantity),
        "average_traded_price": _fitting(row.average_price, PRICE),
        "status": row.status,
        "raw_status": (row.raw_status or "")[:32],
        "cancel_reject_reason": row.reject_reason or "",
        "unique_identifier": (row.unique_identifier or "")[:40],
        "generated_at": row.generated_at,
        "exchange_transact_time": row.transact_time,
        "last_update_time": row.updated_at,
    }


def _position_fields(row: BrokerPositionRow) -> dict:
    return {
        "trading_symbol": (row.trading_symbol or "")[:100],
        "net_qty": None if row.net_qty is None else int(row.net_qty),
        "buy_qty": _count(row.buy_qty),
        "sell_qty": _count(row.sell_qty),
        "buy_avg_price": _fitting(row.buy_avg_price, PRICE),
        "sell_avg_price": _fitting(row.sell_avg_price, PRICE),
        "buy_amount": _fitting(row.buy_amount, MONEY),
        "sell_amount": _fitting(row.sell_amount, MONEY),
        "net_amount": _fitting(row.net_amount, MONEY),
        "realized_mtm": _fitting(row.realized_mtm, MONEY),
        "unrealized_mtm": _fitting(row.unrealized_mtm, MONEY),
        "mtm": _fitting(row.mtm, MONEY),
    }


def books_digest(
    *,
    order_book: Sequence[BrokerOrderRow] | None,
    trades: Sequence[BrokerTradeRow] | None,
) -> str:
    """A fingerprint of one read of the broker's order book and trade book, whatever order
    their rows came in; a book that could not be read counts as such. Equal fingerprints:
    the same rows to the last figure, so storing and applying them again would change
    nothing. (Positions and the balance move with the market: they are stored every time.)"""
    parts = [
        None if rows is None else sorted(repr(row) for row in rows) for rows in (order_book, trades)
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def store_broker_snapshots(
    *,
    account: BrokerAccount,
    order_book: Sequence[BrokerOrderRow] | None,
    trades: Sequence[BrokerTradeRow] | None,
    positions: Sequence[BrokerPositionRow] | None,
    balance: BrokerBalance | None,
    book_digest: str | None = None,
) -> list[str]:
    """Upsert the order book (by broker order id), add new trades (by order and execution
    id), replace the positions (upsert by account+instrument+product; rows the broker no
    longer reports are deleted) and write the balances, in one transaction (none when the
    account's figures are all there is to write). A part that could not be read
    (None) is left as stored, and so is a balance figure the broker sent unreadable (or too
    big for its column).
    Returns the problems found (a trade whose price or quantity is unreadable is not
    stored: it is reported, and stored by a later sync that can read it).

    With the read's `book_digest` (`books_digest`) equal to the account's last complete
    sync's, the stored order and trade books already hold these rows (they were stored
    then, and anything since that changed a row also changed the book): they are not
    written again."""
    now = timezone.now()
    problems = [
        f"trade {row.execution_id} of order {row.broker_order_id}: the broker's "
        f"{'price' if _fitting(row.price, PRICE) is None else 'quantity'} is unreadable; "
        "left out until it is"
        for row in trades or ()
        if not _is_readable(row)
    ]
    books_stored = bool(book_digest) and book_digest == account.synced_book_digest
    fields: dict[str, Any] = {"last_synced_at": now, "updated_at": now}
    if balance is not None:
        figures = {
            "cash_available": _fitting(balance.cash_available, MONEY),
            "margin_utilized": _fitting(balance.margin_utilized, MONEY),
            "net_margin": _fitting(balance.net_margin, MONEY),
        }
        fields.update({name: value for name, value in figures.items() if value is not None})
    # Read first: with the books stored already and the positions as stored, the account's
    # figures are the one write (one statement, no transaction around it).
    positions_changes = (
        _position_changes(account, positions, now) if positions is not None else None
    )
    with transaction.atomic() if not books_stored or positions_changes else nullcontext():
        # The account row first (the lock order: orders.services.account_lock): after the
        # books, it waited for an event's run that holds it in share mode while it waits
        # for one of those book rows.
        BrokerAccount.objects.filter(pk=account.pk).update(**fields)
        if order_book is not None and not books_stored:
            _upsert_broker_orders(account, order_book, now)
        if trades is not None and not books_stored:
            _insert_trades(account, readable_trades(trades), now)
        if positions_changes:
            _write_position_changes(positions_changes)
    for name, value in fields.items():
        setattr(account, name, value)
    return problems


def store_event_rows(
    *,
    account: BrokerAccount,
    orders: Sequence[BrokerOrderRow] = (),
    trades: Sequence[BrokerTradeRow] = (),
    positions: Sequence[BrokerPositionRow] = (),
) -> int:
    """What one broker event reported, into the snapshot tables: order rows upserted, trades
    added by order and execution id (a trade known already is not added twice), position
    rows upserted (none deleted: an event reports one position, not the whole book).
    Returns how many trades were new."""
    now = timezone.now()
    readable = readable_trades(trades)
    # No savepoint inside the event's transaction (apply_broker_events): it fails as one.
    with transaction.atomic(savepoint=False):
        if orders:
            _upsert_broker_orders(account, orders, now)
        new_trades = _insert_trades(account, readable, now) if readable else 0
        if positions:
            _upsert_positions(account, positions, now)
    return new_trades


def _upsert_positions(
    account: BrokerAccount, rows: Sequence[BrokerPositionRow], now: datetime
) -> None:
    for row in rows:
        BrokerPosition.objects.update_or_create(
            account=account,
            exchange_segment=row.exchange_segment[:10],
            exchange_instrument_id=int(row.exchange_instrument_id),
            product_type=row.product_type[:4],
            defaults={**_position_fields(row), "synced_at": now},
        )


def _is_readable(row: BrokerTradeRow) -> bool:
    return row.quantity is not None and _fitting(row.price, PRICE) is not None


def readable_trades(trades: Sequence[BrokerTradeRow]) -> list[BrokerTradeRow]:
    """The trades whose price and quantity could be read, the price within what a price
    column holds (the others cannot be fills)."""
    return [row for row in trades if _is_readable(row)]


def _upsert_broker_orders(
    account: BrokerAccount, rows: Sequence[BrokerOrderRow], now: datetime
) -> None:
    by_id = {str(row.broker_order_id): row for row in rows if row.broker_order_id}
    existing = {
        bo.broker_order_id: bo
        for bo in BrokerOrder.objects.filter(account=account, broker_order_id__in=list(by_id))
    }
    new, changed = [], []
    update_fields = list(_broker_order_fields(rows[0]).keys()) if rows else []
    for broker_order_id, row in by_id.items():
        values = _broker_order_fields(row)
        current = existing.get(broker_order_id)
        if current is None:
            new.append(
                BrokerOrder(
                    account=account, broker_order_id=broker_order_id, synced_at=now, **values
                )
            )
            continue
        if any(getattr(current, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(current, name, value)
            current.synced_at = now
            changed.append(current)
    if new:
        BrokerOrder.objects.bulk_create(new, batch_size=500)
    if changed:
        bulk_update_rows(BrokerOrder, changed, [*update_fields, "synced_at"])


def _insert_trades(account: BrokerAccount, rows: Sequence[BrokerTradeRow], now: datetime) -> int:
    """Adds the trades not stored yet (by order and execution id: an exchange's trade
    number repeats across segments and days; the first of a repeated one) and returns how
    many it added. A trade another writer stores meanwhile is skipped by the database (and
    still counted here: at worst the PnL is computed once more)."""
    ids = sorted({row.execution_id for row in rows if row.execution_id})
    if not ids:
        return 0
    known = set(
        BrokerTrade.objects.filter(account=account, execution_id__in=ids).values_list(
            "broker_order_id", "execution_id"
        )
    )
    new: dict[tuple[str, str], BrokerTradeRow] = {}  # the first row of each new fill
    for row in rows:
        fill = (str(row.broker_order_id)[:40], str(row.execution_id)[:64])
        if row.execution_id and fill not in known:
            new.setdefault(fill, row)
    fresh = [
        BrokerTrade(
            account=account,
            execution_id=str(row.execution_id)[:64],
            broker_order_id=str(row.broker_order_id)[:40],
            unique_identifier=(row.unique_identifier or "")[:40],
            exchange_segment=row.exchange_segment[:10],
            exchange_instrument_id=int(row.exchange_instrument_id),
            trading_symbol=(row.trading_symbol or "")[:100],
            side=_side(row.side),
            product_type=(row.product_type or "")[:4],
            # readable_trades() left out the rows whose quantity or price was unreadable (None).
            quantity=int(row.quantity),  # type: ignore[arg-type]
            price=row.price,  # type: ignore[misc]
            traded_at=row.traded_at,
            synced_at=now,
        )
        for row in new.values()
    ]
    if fresh:
        BrokerTrade.objects.bulk_create(fresh, batch_size=500, ignore_conflicts=True)
    return len(fresh)


@dataclass
class _PositionChanges:
    """What storing a positions read changes: rows to add, to update, to delete."""

    new: list[BrokerPosition]
    changed: list[BrokerPosition]
    gone: list[int]
    fields: list[str]  # the columns a changed row updates

    def __bool__(self) -> bool:
        return bool(self.new or self.changed or self.gone)


def _position_changes(
    account: BrokerAccount, rows: Sequence[BrokerPositionRow], now: datetime
) -> _PositionChanges:
    """Compare a positions read with the stored rows (upsert by account+instrument+product;
    rows the broker no longer reports are deleted). Reads only."""
    existing = {
        (p.exchange_segment, p.exchange_instrument_id, p.product_type): p
        for p in stored_positions(account_ids=[account.pk])
    }
    seen = set()
    new, changed = [], []
    for row in rows:
        key = (row.exchange_segment[:10], int(row.exchange_instrument_id), row.product_type[:4])
        seen.add(key)
        values = _position_fields(row)
        current = existing.get(key)
        if current is None:
            new.append(
                BrokerPosition(
                    account=account,
                    exchange_segment=key[0],
                    exchange_instrument_id=key[1],
                    product_type=key[2],
                    synced_at=now,
                    **values,
                )
            )
        elif any(getattr(current, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(current, name, value)
            current.synced_at = now
            changed.append(current)
    gone = [p.pk for key, p in existing.items() if key not in seen]
    fields = [*_position_fields(rows[0]), "synced_at"] if rows else []
    return _PositionChanges(new=new, changed=changed, gone=gone, fields=fields)


def _write_position_changes(changes: _PositionChanges) -> None:
    if changes.gone:
        BrokerPosition.objects.filter(pk__in=changes.gone).delete()
    if changes.new:
        BrokerPosition.objects.bulk_create(changes.new)
    if changes.changed:
        bulk_update_rows(BrokerPosition, changes.changed, changes.fields)


# ---- step 3: legs from the order book ---------------------------------------------------------


def stored_order_book(account: BrokerAccount) -> list[BrokerOrderRow]:
    """The last stored order book of the account, as rows (when a caller has no fresh one)."""
    return [
        BrokerOrderRow(
            broker_order_id=bo.broker_order_id,
            unique_identifier=bo.unique_identifier,
            exchange_segment=bo.exchange_segment,
            exchange_instrument_id=bo.exchange_instrument_id,
            trading_symbol=bo.trading_symbol,
            side=bo.side,
            order_type=bo.order_type,
            product_type=bo.product_type,
            quantity=bo.order_quantity,
            filled_quantity=bo.cumulative_quantity,
            leaves_quantity=bo.leaves_quantity,
            status=bo.status,
            raw_status=bo.raw_status,
            limit_price=bo.order_price,
            stop_price=bo.order_stop_price,
            average_price=bo.average_traded_price,
            reject_reason=bo.cancel_reject_reason,
        )
        for bo in BrokerOrder.objects.filter(account=account)
    ]


class _Book:
    def __init__(self, rows: Iterable[BrokerOrderRow]):
        self.by_identifier: dict[str, BrokerOrderRow] = {}
        self.by_broker_id: dict[str, BrokerOrderRow] = {}
        for row in rows:
            if row.unique_identifier:
                self.by_identifier[row.unique_identifier] = row
            if row.broker_order_id:
                self.by_broker_id[str(row.broker_order_id)] = row

    def find(self, leg: OrderLeg) -> BrokerOrderRow | None:
        row = self.by_identifier.get(leg.unique_identifier)
        if row is None and leg.broker_order_id:
            row = self.by_broker_id.get(str(leg.broker_order_id))
        return row


# The leg's columns a book row may change (`apply_book_row`); saved with its updated_at as
# LEG_SYNC_FIELDS. The leg changed when one of them did.
_BOOK_ROW_FIELDS = (
    "status",
    "filled_quantity",
    "average_price",
    "broker_order_id",
    "reject_reason",
    "broker_status",
    "quantity",
)
_book_view = attrgetter(*_BOOK_ROW_FIELDS)


_WORKING_REPORTS = (
    LegStatus.PENDING_SUBMIT,
    LegStatus.UNKNOWN,
    LegStatus.OPEN,
    LegStatus.PARTIALLY_FILLED,
)


def is_stale_report(leg: OrderLeg, row: BrokerOrderRow) -> bool:
    """Whether a report is older than what the leg shows: fewer fills than it holds, or a
    working status for a leg already final with no new fill. Events arrive out of order (a
    PartiallyFilled after the Filled, an answer after the stream): such a report is old
    news, not a contradiction to audit."""
    filled = row.filled_quantity
    if filled is not None and filled < leg.filled_quantity:
        return True
    return (
        leg.status in FINAL_LEG_STATUSES
        and row.status in _WORKING_REPORTS
        and (filled or 0) <= leg.filled_quantity
    )


def apply_book_row(
    leg: OrderLeg, row: BrokerOrderRow, *, actor: str
) -> tuple[bool, OrderEvent | None]:
    """Copy the broker's view onto the leg (in memory): its status and numbers through the
    leg lifecycle (fills only grow, a final leg never goes back to open on a stale row, a
    fill that raced our cancel wins), then the broker's id, average price, reject reason
    and raw status. Returns whether the leg changed, and the audit row of a report the
    lifecycle refused: the leg keeps the raw status it refused, so the same row read again
    next minute is recorded once, not every minute."""
    before = _book_view(leg)
    raw_status = (row.raw_status or "")[:32]
    event = reported(row.status, filled_quantity=row.filled_quantity, quantity=row.quantity)
    transition = apply_leg_event(
        leg, event, actor=actor, source="sync", order=leg.order, detail={"raw_status": raw_status}
    )
    if not transition.applied:
        if leg.broker_status == raw_status:
            return False, None
        leg.broker_status = raw_status
        return True, transition.refusal
    average = _fitting(row.average_price, PRICE)
    if average is not None and average > 0:
        leg.average_price = average
    if row.broker_order_id and not leg.broker_order_id:
        leg.broker_order_id = str(row.broker_order_id)[:40]
    if leg.status == LegStatus.REJECTED and row.reject_reason:
        leg.reject_reason = row.reject_reason[:2000]
    leg.broker_status = raw_status
    return before != _book_view(leg), None


@dataclass(frozen=True)
class ReportEffect:
    """What an order-book row did to its leg (`apply_report`)."""

    write: bool  # the leg changed in memory: save it (LEG_SYNC_FIELDS)
    audit: OrderEvent | None  # its audit row: the state change, or the lifecycle's refusal
    moved: bool  # the leg's state moved (roll its order up, announce it)


def apply_report(leg: OrderLeg, row: BrokerOrderRow, *, actor: str, message: str) -> ReportEffect:
    """An order-book row onto its leg (in memory), as the sync and the broker events both
    apply one: `apply_book_row`, then an audit row (`message`) when the leg's state moved.
    A refused report is written (the raw status it carried) with the refusal's audit row; a
    change of the broker's raw status text alone (typically the first sight of a leg placed
    moments ago) is written with no audit row, nothing to roll up or announce."""
    before, reason_before = leg_state(leg), leg.reject_reason
    changed, refusal = apply_book_row(leg, row, actor=actor)
    if refusal is not None:
        return ReportEffect(write=True, audit=refusal, moved=False)
    if not changed:
        return ReportEffect(write=False, audit=None, moved=False)
    if leg_state(leg) == before and leg.reject_reason == reason_before:
        return ReportEffect(write=True, audit=None, moved=False)
    synced = leg_change(
        leg.order, leg, kind=EventKind.LEG_SYNCED, actor=actor, message=message, before=before
    )
    return ReportEffect(write=True, audit=synced, moved=True)


LEG_SYNC_FIELDS = [*_BOOK_ROW_FIELDS, "updated_at"]


def reconcile_pending_legs(
    *,
    account: BrokerAccount,
    order_book: Sequence[BrokerOrderRow] | None,
    actor: str = MONITORING_ACTOR,
) -> list[int]:
    """Settle legs a crash or broker timeout left PENDING_SUBMIT: found in the order book by
    unique identifier -> the broker's state; absent after the grace period -> REJECTED with
    the reason. Never re-sent (the broker may still hold a copy under another id only if it
    ignored our identifier, which XTS does not). Returns the ids of orders that changed."""
    book = _Book(order_book if order_book is not None else stored_order_book(account))
    now = timezone.now()
    cutoff = now - timedelta(seconds=pending_grace_seconds())
    with transaction.atomic(savepoint=False):  # see sync_account_orders
        pending = list(
            OrderLeg.objects.select_for_update()
            .filter(account=account, status=LegStatus.PENDING_SUBMIT)
            .select_related("order")
            .order_by("id")
        )
        fence(account.pk)
        events, changed_legs = [], []
        for leg in pending:
            before = leg_state(leg)
            row = book.find(leg)
            if row is not None:
                _changed, refusal = apply_book_row(leg, row, actor=actor)
                kind = EventKind.LEG_RECONCILED
                message = f"found in the broker's order book as {leg.broker_order_id}"
            elif (leg.submitted_at or leg.created_at) <= cutoff:
                transition = apply_leg_event(
                    leg,
                    LegEvent(LegEventKind.NOT_FOUND_AFTER_GRACE),
                    actor=actor,
                    source="reconcile",
                    order=leg.order,
                )
                refusal = transition.refusal
                if refusal is None:
                    leg.reject_reason = (
                        f"not found in the broker's order book {pending_grace_seconds()} s "
                        "after submission: the broker never received it (not re-sent)"
                    )
                kind, message = EventKind.LEG_UNCONFIRMED, leg.reject_reason
            else:
                continue
            if refusal is not None:  # a pending leg accepts every report: kept for safety
                events.append(refusal)
                continue
            leg.updated_at = now
            changed_legs.append(leg)
            events.append(
                leg_change(leg.order, leg, kind=kind, actor=actor, message=message, before=before)
            )
        if changed_legs:
            bulk_update_rows(OrderLeg, changed_legs, LEG_SYNC_FIELDS)
        record_changes(events)
        order_ids = sorted({leg.order_id for leg in changed_legs})
        roll_up_orders(order_ids=order_ids, actor=actor)
    return order_ids


def roll_up_orders(*, order_ids: Iterable[int], actor: str, notify_all: bool = True) -> list[int]:
    """Re-derive each order's status and filled quantity from its legs; audit and notify the
    ones that changed (all of them when `notify_all`: their legs changed). Returns those
    whose status or filled quantity changed."""
    ids = list(order_ids)
    if not ids:
        return []
    return roll_up(orders_with_legs(ids), actor=actor, notify_all=notify_all)


def roll_up(
    read: list[tuple[Order, list[OrderLeg]]], *, actor: str, notify_all: bool = True
) -> list[int]:
    """`roll_up_orders` for orders the caller has just read with all their legs
    (`orders.selectors.orders_with_legs`, after its last leg write, in its transaction):
    the orders in memory show the rolled-up status afterwards."""
    changed = []
    now = timezone.now()
    for order, legs in read:
        status, filled = derive_order_status(kind=order.kind, current=order.status, legs=legs)
        if (status, filled) != (order.status, order.filled_quantity):
            before = order_state(order)
            order.status, order.filled_quantity, order.updated_at = status, filled, now
            Order.objects.filter(pk=order.pk).update(
                status=status, filled_quantity=filled, updated_at=now
            )
            record_change(
                order=order,
                kind=EventKind.ORDER_STATUS,
                actor=actor,
                message=f"order {before['status']} -> {status}",
                before=before,
                after=order_state(order),
                notify={"event": "status"},
            )
            changed.append(order.pk)
        elif notify_all:
            notify_order(order, event="legs")
    return changed


# The leg states a sync compares with the order book: the legs it reads (live, or named in
# the book) and the pending ones it reconciles.
_SYNCED_LEG_STATUSES = [
    LegStatus.OPEN,
    LegStatus.PARTIALLY_FILLED,
    LegStatus.UNKNOWN,
    LegStatus.PENDING_SUBMIT,
]
_LEG_DIGEST_FIELDS = (
    "id",
    "status",
    "quantity",
    "filled_quantity",
    "average_price",
    "broker_order_id",
    "broker_status",
    "reject_reason",
    "order_type",
    "limit_price",
    "stop_price",
    "modification_count",
    "updated_at",
)


def _digested_legs(
    *, account_id: int, identifiers: list[str] | None = None
) -> QuerySet[OrderLeg, tuple[Any, ...]]:
    synced = Q(status__in=_SYNCED_LEG_STATUSES)
    if identifiers is not None:
        synced |= Q(unique_identifier__in=identifiers)
    legs = OrderLeg.objects.filter(account_id=account_id).filter(synced).order_by("id")
    return legs.values_list(*_LEG_DIGEST_FIELDS)


# Read by every cycle and broker event of every account: compiled once (`PreparedRows`).
_DIGESTED_LEGS = PreparedRows(tuple, _digested_legs)


def _legs_digest(account: BrokerAccount, book: _Book) -> tuple[str, bool]:
    """A fingerprint of every leg the sync would read or reconcile against `book`, as
    stored now (any write to one, by anyone, changes it: `updated_at` is in it), and
    whether one is still PENDING_SUBMIT (its settling depends on the clock, not the book)."""
    # No identifiers: no such OR branch (an empty list would answer no rows at all).
    named = {"identifiers": list(book.by_identifier)} if book.by_identifier else {}
    rows = _DIGESTED_LEGS(account_id=account.pk, **named)
    pending = any(row[1] == LegStatus.PENDING_SUBMIT for row in rows)
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:32], pending


def sync_account_orders(
    *,
    account: BrokerAccount,
    order_book: Sequence[BrokerOrderRow] | None,
    positions: Sequence[BrokerPositionRow] | None = None,
    actor: str = MONITORING_ACTOR,
    book_digest: str | None = None,
) -> list[int]:
    """Step 3, one transaction: legs from the order book (status, fills, average price,
    reject reason, broker id), then pending legs reconciled, then each touched order's
    status rolled up, and the live orders' fair prices and LTP refreshed. Every change is
    an OrderEvent and an order_update after commit. Returns the changed order ids.
    `positions` is accepted for the step's signature; positions are stored by step 1.

    With the read's `book_digest` (the monitoring cycle's), the sync remembers what it saw
    on the account (`synced_book_digest`, `synced_legs_digest`); a later sync that gets
    the same book and finds every leg it would compare as it left them, none pending, has
    nothing to apply and only refreshes the prices. Anything else (a fill, a cancel, a
    modification, a leg any process wrote, a pending leg) makes it a full sync."""
    rows = list(order_book) if order_book is not None else stored_order_book(account)
    book = _Book(rows)
    if book_digest and book_digest == account.synced_book_digest:
        # Reads alone (no lock, no transaction): nothing is applied unless they differ.
        legs_digest, pending = _legs_digest(account, book)
        if not pending and legs_digest == account.synced_legs_digest:
            _refresh_fair_prices(account)
            return []
    # One transaction; no savepoint when nested in a caller's (nor for
    # reconcile_pending_legs nested in it): a failure rolls the whole account's sync back
    # anyway, and the savepoints were a quarter of the step's round trips.
    with transaction.atomic(savepoint=False):
        # The account row first, FOR UPDATE (it writes the digests below): taken after the
        # legs and orders, it deadlocked with a PnL run holding it and waiting for one of
        # those orders (the lock order: orders.services.account_lock).
        lock_account_row(account.pk, exclusive=True)
        touched = _sync_legs(account=account, rows=rows, book=book, actor=actor)
        if book_digest:
            legs_digest, _pending = _legs_digest(account, book)
            BrokerAccount.objects.filter(pk=account.pk).update(
                synced_book_digest=book_digest, synced_legs_digest=legs_digest
            )
            account.synced_book_digest, account.synced_legs_digest = book_digest, legs_digest
    return touched


def _sync_legs(
    *, account: BrokerAccount, rows: list[BrokerOrderRow], book: _Book, actor: str
) -> list[int]:
    """The order book applied to the account's legs, inside sync_account_orders' transaction."""
    now = timezone.now()
    # Locked (the legs only) so a cancel or modification finishing meanwhile applies
    # its event before or after this sync, never in between.
    legs = {
        leg.pk: leg
        for leg in OrderLeg.objects.filter(account=account)
        .filter(
            Q(status__in=[LegStatus.OPEN, LegStatus.PARTIALLY_FILLED, LegStatus.UNKNOWN])
            | Q(unique_identifier__in=list(book.by_identifier))
        )
        .exclude(status=LegStatus.PENDING_SUBMIT)
        .select_for_update()
        .order_by("id")
    }
    fence(account.pk)
    # Their orders read apart: a join would lock the orders too (MariaDB has no FOR
    # UPDATE OF).
    orders = Order.objects.in_bulk({leg.order_id for leg in legs.values()})
    for leg in legs.values():
        leg.order = orders[leg.order_id]
    events, changed_legs, audited_legs = [], [], []
    for leg in legs.values():
        row = book.find(leg)
        if row is None:
            continue
        report = apply_report(
            leg, row, actor=actor, message=f"broker status {row.raw_status or row.status}"
        )
        if report.write:
            leg.updated_at = now
            changed_legs.append(leg)
        if report.audit is not None:
            events.append(report.audit)
        if report.moved:
            audited_legs.append(leg)
    if changed_legs:
        bulk_update_rows(OrderLeg, changed_legs, LEG_SYNC_FIELDS)
    record_changes(events, batch_size=500)
    touched = {leg.order_id for leg in audited_legs}
    roll_up_orders(order_ids=sorted(touched), actor=actor)
    touched.update(reconcile_pending_legs(account=account, order_book=rows, actor=actor))
    _refresh_fair_prices(account)
    return sorted(touched)


_PRICE_COLUMNS = (
    "id",
    "buy_fair_price",
    "sell_fair_price",
    "avg_fair_price",
    "ltp",
    "instrument__fair_price__instrument_id",
    "instrument__fair_price__buy_fair_price",
    "instrument__fair_price__sell_fair_price",
    "instrument__fair_price__avg_fair_price",
    "instrument__fair_price__last_traded_price",
)
_SHOWN_AND_CURRENT_PRICES = PreparedRows(
    tuple,
    lambda *, account_id: Order.objects.filter(
        account_id=account_id, status__in=LIVE_ORDER_STATUSES
    ).values_list(*_PRICE_COLUMNS),
)


def _refresh_fair_prices(account: BrokerAccount) -> None:
    """Copy each live order's instrument fair prices and LTP onto it (the design's wide
    row): one UPDATE per instrument whose orders show other prices, none when they already
    show the current ones (the usual case between two price ticks)."""
    # The orders' shown prices and their instruments' current ones in one read (a join).
    stale: dict[tuple, list[int]] = {}
    for order_id, *prices in _SHOWN_AND_CURRENT_PRICES(account_id=account.pk):
        shown, (priced, *current) = tuple(prices[:4]), prices[4:]
        if priced is not None and shown != tuple(current):
            stale.setdefault(tuple(current), []).append(order_id)
    if not stale:
        return
    with transaction.atomic(savepoint=False):  # one commit for every instrument's prices
        for (buy, sell, avg, ltp), order_ids in stale.items():
            Order.objects.filter(pk__in=order_ids).update(
                buy_fair_price=buy, sell_fair_price=sell, avg_fair_price=avg, ltp=ltp
            )
