"""Changing working orders: modify, cancel, re-price (steps 5-6).

Each broker call happens outside any transaction; what the broker answered is written
after it, with an OrderEvent either way, and an order_update once committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from orders.brokers.base import BrokerError, BrokerUnavailable, OrderAck, OrderRejected
from orders.domain.lifecycle import LegEvent, LegEventKind
from orders.domain.rollup import primary_leg
from orders.domain.vocabulary import LIMIT_GIVEN, OPEN_LEG_STATUSES, EventKind, LegStatus
from orders.models import Order, OrderLeg, OrderType, Side
from orders.services.audit import record_accepted_change, record_broker_error, record_changes
from orders.services.broker_calls import apply_answer_row, cancel_at_broker, modify_at_broker
from orders.services.exclusion import account_exclusion
from orders.services.lifecycle import apply_accepted_change
from orders.services.sync import LEG_SYNC_FIELDS, roll_up_orders
from orders.services.trading_lock import ensure_trading_allowed_now, is_trading_locked
from orders.validation import check_leg_change, plain
from trading_site.core.errors import (
    BrokerRejectedError,
    BrokerUnavailableError,
    Conflict,
    NotFound,
    ValidationFailed,
)

Role = OrderLeg.Role
WORKING = (LegStatus.OPEN, LegStatus.PARTIALLY_FILLED)


def _broker_failure(
    exc: BrokerError, *, order: Order, leg: OrderLeg, what: str
) -> BrokerRejectedError | BrokerUnavailableError:
    """The API error for a failed broker call (after it was audited)."""
    details = {"order_id": order.pk, "leg_id": leg.pk, "reason": exc.message}
    if isinstance(exc, OrderRejected):
        return BrokerRejectedError(
            f"The broker rejected the {what}: {exc.message}", details=details
        )
    if isinstance(exc, BrokerUnavailable):
        return BrokerUnavailableError(
            f"The broker did not answer the {what}; the next sync shows its outcome",
            details=details,
        )
    return BrokerUnavailableError(f"The {what} failed: {exc.message}", details=details)


def _working_leg(order: Order, leg_id: int | None) -> OrderLeg:
    legs = list(order.legs.order_by("id"))
    if leg_id is not None:
        leg = next((leg for leg in legs if leg.pk == leg_id), None)
        if leg is None:
            raise NotFound("Leg not found", details={"leg_id": leg_id})
    else:
        leg = primary_leg(order.kind, legs)
        if leg is None:
            raise Conflict("The order has no legs", details={"order_id": order.pk})
    if leg.status == LegStatus.PENDING_SUBMIT:
        raise Conflict(
            "The broker has not acknowledged this leg yet; try again after the next sync",
            details={"leg_id": leg.pk, "status": leg.status},
        )
    if leg.status not in WORKING or not leg.broker_order_id:
        raise Conflict(
            f"The leg is {leg.status}; only working legs can change",
            details={"leg_id": leg.pk, "status": leg.status},
        )
    return leg


# ---- modify -------------------------------------------------------------------------------------


def modify_order(
    *,
    order: Order,
    actor: str,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    quantity: int | None = None,
    leg_id: int | None = None,
) -> Order:
    """PATCH /api/orders/{id}: new price(s) and/or quantity for one working leg (the entry,
    or `leg_id`). Only a single order's quantity may change: a bracket's exit quantities
    follow its fills (step 4)."""
    if limit_price is None and stop_price is None and quantity is None:
        raise ValidationFailed(
            "Nothing to change",
            details={"non_field_errors": ["give limit_price, stop_price or quantity"]},
        )
    # Decided and sent under the account's exclusion: on the leg as the last event or
    # cycle left it, never while one of them is changing it.
    with account_exclusion(order.account_id, purpose="modify"):
        order.refresh_from_db()
        _modify_order(
            order=order,
            actor=actor,
            limit_price=limit_price,
            stop_price=stop_price,
            quantity=quantity,
            leg_id=leg_id,
        )
    order.refresh_from_db()
    return order


def _modify_order(
    *,
    order: Order,
    actor: str,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    quantity: int | None,
    leg_id: int | None,
) -> None:
    leg = _working_leg(order, leg_id)
    if quantity is not None and (order.kind == Order.Kind.BRACKET or leg.role != Role.ENTRY):
        raise ValidationFailed(
            "Only a single order's quantity can change",
            details={"quantity": ["a bracket's quantities follow its fills"]},
        )
    new_quantity = quantity if quantity is not None else leg.quantity
    if leg.role == Role.ENTRY and new_quantity > leg.quantity:
        # A bigger entry is more of a new position: not on an account the kill switch
        # locked (an entry it could not cancel may still be working there).
        ensure_trading_allowed_now(order.account_id)
    new_limit = limit_price if limit_price is not None else leg.limit_price
    new_stop = stop_price if stop_price is not None else leg.stop_price
    check_leg_change(
        side=leg.side,
        order_type=leg.order_type,
        instrument=order.instrument,
        quantity=new_quantity,
        filled_quantity=leg.filled_quantity if quantity is not None else -1,
        limit_price=new_limit,
        stop_price=new_stop,
    )
    _check_bracket_prices(order, leg, new_limit, new_stop)
    _modify_leg(
        order=order,
        leg=leg,
        quantity=new_quantity,
        limit_price=new_limit,
        stop_price=new_stop,
        actor=actor,
        kind=EventKind.LEG_MODIFIED,
        failed_kind=EventKind.LEG_MODIFIED_FAILED,
        limit_set=limit_price is not None,
    )


def _target_prices(order: Order) -> list[Decimal]:
    """A bracket's take-profit prices, as stored on the order (JSON)."""
    return [Decimal(str(target["price"])) for target in order.targets or []]


def _check_bracket_prices(
    order: Order, leg: OrderLeg, limit: Decimal | None, stop: Decimal | None
) -> None:
    """A bracket's entry must stay between its stop-loss and its targets."""
    if order.kind != Order.Kind.BRACKET or leg.role != Role.ENTRY or limit is None:
        return
    buy = order.side == Side.BUY
    sl = [p for p in (order.sl_price, order.sl_stop_price) if p is not None]
    targets = _target_prices(order)
    if sl and ((buy and limit <= max(sl)) or (not buy and limit >= min(sl))):
        raise ValidationFailed(
            "limit_price: must stay on the entry side of the stop-loss",
            details={"limit_price": ["must stay on the entry side of the stop-loss"]},
        )
    if targets and ((buy and limit >= min(targets)) or (not buy and limit <= max(targets))):
        raise ValidationFailed(
            "limit_price: must stay short of the targets",
            details={"limit_price": ["must stay short of the targets"]},
        )


def _modify_leg(
    *,
    order: Order,
    leg: OrderLeg,
    quantity: int,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    actor: str,
    kind: EventKind,
    failed_kind: EventKind,
    limit_set: bool = True,
) -> OrderLeg:
    """`limit_set`: the trader gave the leg's limit (False: it keeps its working one, which
    the desk may have re-priced, and the order keeps the trader's configured price)."""
    try:
        ack = modify_at_broker(
            leg, order, quantity=quantity, limit_price=limit_price, stop_price=stop_price
        )
    except BrokerError as exc:
        record_broker_error(exc, order=order, leg=leg, kind=failed_kind, actor=actor)
        raise _broker_failure(exc, order=order, leg=leg, what="modification") from exc
    with transaction.atomic():
        event = LegEvent(LegEventKind.MODIFY_ACCEPTED, quantity=quantity)
        before = apply_accepted_change(leg, event, actor=actor, source="modify", order=order)
        if before is None:
            # The broker took the change, but the leg had moved on meanwhile (it filled,
            # or was cancelled): recorded, and the leg is left as it is.
            return leg
        old_stop = leg.stop_price
        leg.limit_price, leg.stop_price = limit_price, stop_price
        leg.modification_count += 1
        leg.save(
            update_fields=[
                "quantity",
                "limit_price",
                "stop_price",
                "modification_count",
                "updated_at",
            ]
        )
        order_fields = ["updated_at"]
        if leg.role == Role.ENTRY:
            order_fields += _follow_entry(
                order, leg, by_desk=kind == EventKind.LEG_REPRICED, limit_set=limit_set
            )
            if order.kind == Order.Kind.SINGLE:
                order.quantity = quantity
                order_fields.append("quantity")
        elif leg.role == Role.STOP_LOSS:
            order_fields += _follow_stop_loss(
                order,
                leg,
                old_stop=old_stop,
                by_desk=kind == EventKind.LEG_REPRICED,
                limit_set=limit_set,
            )
        elif leg.role == Role.TAKE_PROFIT and leg.target_index is not None:
            # Likewise a moved target: later fills' legs for it use its new price.
            targets = [dict(target) for target in order.targets or []]
            if limit_price is not None and leg.target_index < len(targets):
                targets[leg.target_index]["price"] = plain(limit_price)
                order.targets = targets
                order_fields.append("targets")
        order.save(update_fields=order_fields)
        # The trader's own limit, even one equal to the working (re-priced) one it replaced:
        # re-pricing's bound holds from it from then on (orders.selectors.repricing_anchors).
        given = kind == EventKind.LEG_MODIFIED and limit_set and limit_price is not None
        _record_answered_change(
            order,
            leg,
            ack,
            kind=kind,
            actor=actor,
            before=before,
            done="modified",
            notify=True,
            noted={LIMIT_GIVEN: True} if given else None,
        )
        _apply_answer(order, leg, ack, actor=actor)
    return leg


def _follow_entry(order: Order, leg: OrderLeg, *, by_desk: bool, limit_set: bool) -> list[str]:
    """The order's entry prices after its entry leg changed (the leg's new prices set), which
    a regeneration re-places a rejected order at; the fields changed. A trader's modify sets
    them to the leg's; a re-pricing (the desk chasing a stuck entry) leaves them as the
    trader set them: the regenerated entry's slippage bound holds from its own limit, so one
    placed at a re-priced limit would slip one more bound every time it is regenerated. The
    working price is the entry leg's own. A trader's modify that gives no limit (a new
    quantity, a new stop) keeps the trader's limit too, not the working one it left on the
    leg: moved only as far as the trader moved the stop (their gap to it kept, so the pair
    stays valid), as `repricing_anchors` moves the leg's anchor."""
    if by_desk:
        return []
    if limit_set:
        order.limit_price, order.stop_price = leg.limit_price, leg.stop_price
        return ["limit_price", "stop_price"]
    if order.stop_price == leg.stop_price:
        return []
    if (
        order.limit_price is not None
        and order.stop_price is not None
        and leg.stop_price is not None
    ):
        order.limit_price = leg.stop_price - (order.stop_price - order.limit_price)
    order.stop_price = leg.stop_price
    return ["limit_price", "stop_price"]


def _follow_stop_loss(
    order: Order, leg: OrderLeg, *, old_stop: Decimal | None, by_desk: bool, limit_set: bool
) -> list[str]:
    """The bracket's stop-loss prices after its stop-loss leg changed (the leg's new prices
    set), which later stop-loss legs (more fills, a stop-loss placed again) are placed at;
    the fields changed. A trader's modify sets them to the leg's; a trailing move (the desk
    moving the stop) by as much as it moved the stop, keeping the trader's gap to the limit;
    a re-pricing (the desk chasing a stuck leg: its limit only) leaves them: a new leg's
    slippage bound holds from its own limit, so one placed at a re-priced limit would slip
    one more bound every time a stop-loss is placed again. A trader's modify that gives no
    limit (a new stop only) keeps the trader's limit too, as a trail does: the working
    limit it left on the leg may be a re-priced one."""
    if leg.order_type != OrderType.STOPLIMIT:
        order.sl_price = leg.stop_price
        return ["sl_price"]
    keeps_limit = by_desk or not limit_set
    if keeps_limit and leg.stop_price == old_stop:
        return []  # re-priced, or the trader changed nothing of the prices
    limit, stop = order.sl_price, order.sl_stop_price
    if keeps_limit and limit is not None and stop is not None and leg.stop_price is not None:
        order.sl_price = leg.stop_price - (stop - limit)  # trailed: the trader's gap
    else:
        order.sl_price = leg.limit_price
    order.sl_stop_price = leg.stop_price
    return ["sl_price", "sl_stop_price"]


def _record_answered_change(
    order: Order,
    leg: OrderLeg,
    ack: OrderAck,
    *,
    kind: EventKind,
    actor: str,
    before: dict,
    done: str,
    notify: bool = False,
    noted: dict | None = None,
) -> None:
    """`record_accepted_change` in this module's words: the leg's role and identifier, and
    what was `done` to it; with `notify`, the owner hears of it."""
    record_accepted_change(
        order,
        leg,
        ack,
        kind=kind,
        actor=actor,
        message=f"{leg.role} leg {leg.unique_identifier} {done}",
        before=before,
        notify={"event": str(kind), "leg_id": leg.pk} if notify else None,
        noted=noted,
    )


def _apply_answer(order: Order, leg: OrderLeg, ack: OrderAck, *, actor: str) -> None:
    """What the broker's answer says beyond "done" (the paper exchange may have filled the
    modified leg at once): applied now, and the order rolled up, in the caller's
    transaction."""
    events = apply_answer_row(leg, order, ack, actor=actor)
    if not events:
        return
    leg.save(update_fields=LEG_SYNC_FIELDS)
    record_changes(events)
    roll_up_orders(order_ids=[order.pk], actor=actor)


def reprice_leg(
    *,
    leg_id: int,
    account_id: int,
    new_limit_price: Decimal | None,
    new_stop_price: Decimal | None = None,
    actor: str,
) -> OrderLeg:
    """Steps 5-6: move a working leg's limit (and optionally stop) price at the broker; the
    leg is read afresh under its account's exclusion. Raises BrokerRejectedError /
    BrokerUnavailableError (audited) when the broker refuses."""
    with account_exclusion(account_id, purpose="re-price"):
        return _reprice_leg(
            leg_id=leg_id,
            account_id=account_id,
            new_limit_price=new_limit_price,
            new_stop_price=new_stop_price,
            actor=actor,
        )


def _reprice_leg(
    *,
    leg_id: int,
    account_id: int,
    new_limit_price: Decimal | None,
    new_stop_price: Decimal | None,
    actor: str,
) -> OrderLeg:
    leg = OrderLeg.objects.select_related("order", "order__account", "order__instrument").get(
        pk=leg_id, account_id=account_id
    )
    order = leg.order
    if leg.status not in WORKING or not leg.broker_order_id:
        raise Conflict(
            f"The leg is {leg.status}; only working legs can be re-priced",
            details={"leg_id": leg.pk},
        )
    if leg.role == Role.ENTRY and is_trading_locked(account_id):
        # No chasing the market into a new position on an account the kill switch locked
        # (an entry it could not cancel may still be working there): left as it is.
        return leg
    has_limit = leg.order_type in (OrderType.LIMIT, OrderType.STOPLIMIT)
    limit = (
        (new_limit_price if new_limit_price is not None else leg.limit_price) if has_limit else None
    )
    stop = new_stop_price if new_stop_price is not None else leg.stop_price
    limit = _short_of_targets(order, leg, limit)
    if limit == leg.limit_price and stop == leg.stop_price:
        return leg
    return _modify_leg(
        order=order,
        leg=leg,
        quantity=leg.quantity,
        limit_price=limit,
        stop_price=stop,
        actor=actor,
        kind=EventKind.LEG_REPRICED,
        failed_kind=EventKind.LEG_REPRICED_FAILED,
    )


def _short_of_targets(order: Order, leg: OrderLeg, limit: Decimal | None) -> Decimal | None:
    """A re-priced bracket entry's limit kept where a trader's modify may put it
    (`_check_bracket_prices`): at most one tick short of the nearest target, so the desk
    never buys above (or sells below) the price the trader means to take profit at."""
    if order.kind != Order.Kind.BRACKET or leg.role != Role.ENTRY or limit is None:
        return limit
    targets = _target_prices(order)
    if not targets:
        return limit
    tick = order.instrument.tick_size or Decimal("0.0001")
    if order.side == Side.BUY:
        return min(limit, min(targets) - tick)
    return max(limit, max(targets) + tick)


# ---- cancel ------------------------------------------------------------------------------------


def cancel_order(*, order: Order, actor: str) -> Order:
    """POST /api/orders/{id}/cancel: cancel the order's unfilled entry at the broker. For a
    bracket whose entry already filled in part, the stop-loss and targets keep protecting
    the filled part (use the kill switch to flatten everything)."""
    with account_exclusion(order.account_id, purpose="cancel"):
        order.refresh_from_db()
        _cancel_order(order=order, actor=actor)
    order.refresh_from_db()
    return order


def _cancel_order(*, order: Order, actor: str) -> None:
    legs = list(order.legs.order_by("id"))
    entry = primary_leg(order.kind, legs)
    if entry is None or entry.status not in OPEN_LEG_STATUSES:
        raise Conflict(
            f"The order is {order.status}; there is nothing to cancel",
            details={"order_id": order.pk, "status": order.status},
        )
    if not acknowledged_by_broker(entry):
        raise Conflict(
            "The broker has not acknowledged the order yet; try again after the next sync",
            details={"order_id": order.pk, "status": order.status},
        )
    cancel_leg(
        order=order,
        leg=entry,
        actor=actor,
        kind=EventKind.LEG_CANCELLED,
        failed_kind=EventKind.LEG_CANCELLED_FAILED,
        raise_errors=True,
    )
    roll_up_orders(order_ids=[order.pk], actor=actor)


def cancel_leg(
    *,
    order: Order,
    leg: OrderLeg,
    actor: str,
    kind: EventKind,
    failed_kind: EventKind,
    raise_errors: bool,
) -> BrokerError | None:
    """Cancel one working leg at the broker and record it (through the lifecycle). A broker
    error is audited, then raised as the API's error or (`raise_errors=False`) returned."""
    try:
        ack = cancel_at_broker(leg, order.account)
    except BrokerError as exc:
        record_broker_error(exc, order=order, leg=leg, kind=failed_kind, actor=actor)
        if raise_errors:
            raise _broker_failure(exc, order=order, leg=leg, what="cancellation") from exc
        return exc
    with transaction.atomic():
        event = LegEvent(LegEventKind.CANCEL_CONFIRMED)
        before = apply_accepted_change(leg, event, actor=actor, source="cancel", order=order)
        if before is None:
            # A fill that raced the cancel won: the leg stays filled, the refusal is kept.
            return None
        leg.save(update_fields=["status", "updated_at"])
        _record_answered_change(
            order, leg, ack, kind=kind, actor=actor, before=before, done="cancelled"
        )
    return None


def acknowledged_by_broker(leg: OrderLeg) -> bool:
    """Whether the broker knows the leg (it has the broker's id): one it has not acknowledged
    yet cannot be cancelled or modified until the next sync."""
    return leg.status != LegStatus.PENDING_SUBMIT and bool(leg.broker_order_id)


@dataclass(frozen=True)
class CancelAttempt:
    """One working leg's cancellation, asked for without raising. `sent` is False for a leg
    the broker has not acknowledged yet (nothing was sent); `error` is the broker's refusal
    (already audited)."""

    leg: OrderLeg
    sent: bool
    error: BrokerError | None = None

    @property
    def cancelled(self) -> bool:
        return self.sent and self.error is None


def try_cancel_leg(
    *, order: Order, leg: OrderLeg, actor: str, kind: EventKind, failed_kind: EventKind
) -> CancelAttempt:
    """Cancel one working leg where it can be: an unacknowledged leg is left alone, a broker
    refusal is audited and returned (the caller decides what it holds back)."""
    if not acknowledged_by_broker(leg):
        return CancelAttempt(leg=leg, sent=False)
    error = cancel_leg(
        order=order, leg=leg, actor=actor, kind=kind, failed_kind=failed_kind, raise_errors=False
    )
    return CancelAttempt(leg=leg, sent=True, error=error)


def cancel_working_legs(
    legs: Iterable[OrderLeg], *, actor: str, kind: EventKind, failed_kind: EventKind
) -> list[CancelAttempt]:
    """Each leg (with its order loaded) cancelled in turn, as `try_cancel_leg`: the bulk
    cancels of a position exit and of the kill switch."""
    return [
        try_cancel_leg(order=leg.order, leg=leg, actor=actor, kind=kind, failed_kind=failed_kind)
        for leg in legs
    ]
