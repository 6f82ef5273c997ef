"""Changing working orders: modify, cancel, re-price (steps 5-6) and the kill switch.

Each broker call happens outside any transaction; what the broker answered is written
after it, with an OrderEvent either way, and an order_update once committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from accounts.models import BrokerAccount
from orders.brokers.base import BrokerError, BrokerUnavailable, OrderRejected
from orders.identifiers import ensure_daily_counter, next_unique_identifiers
from orders.models import Instrument, Order, OrderEvent, OrderLeg, OrderType, Side
from orders.services.common import (
    OPEN_LEG_STATUSES,
    LegStatus,
    cancel_at_broker,
    client_for,
    leg_state,
    modify_at_broker,
    new_event,
    notify_order,
    record_event,
)
from orders.services.placement import OrderPlan, write_ahead
from orders.services.protection import send_and_record_legs
from orders.services.rollup import open_position_of, primary_leg
from orders.services.sync import LIVE_ORDER_STATUSES, roll_up_orders
from orders.validation import check_leg_change
from trading_site.api.errors import (
    BrokerRejectedError,
    BrokerUnavailableError,
    Conflict,
    InvalidInput,
    NotFound,
)

Role = OrderLeg.Role
WORKING = (LegStatus.OPEN, LegStatus.PARTIALLY_FILLED)


def _broker_failure(exc: BrokerError, *, order: Order, leg: OrderLeg, what: str):
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
        raise InvalidInput(
            "Nothing to change",
            details={"non_field_errors": ["give limit_price, stop_price or quantity"]},
        )
    leg = _working_leg(order, leg_id)
    if quantity is not None and (order.kind == Order.Kind.BRACKET or leg.role != Role.ENTRY):
        raise InvalidInput(
            "Only a single order's quantity can change",
            details={"quantity": ["a bracket's quantities follow its fills"]},
        )
    new_quantity = quantity if quantity is not None else leg.quantity
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
        kind="leg_modified",
    )
    order.refresh_from_db()
    return order


def _check_bracket_prices(order: Order, leg: OrderLeg, limit, stop) -> None:
    """A bracket's entry must stay between its stop-loss and its targets."""
    if order.kind != Order.Kind.BRACKET or leg.role != Role.ENTRY or limit is None:
        return
    buy = order.side == Side.BUY
    sl = [p for p in (order.sl_price, order.sl_stop_price) if p is not None]
    targets = [Decimal(str(t["price"])) for t in order.targets or []]
    if sl and ((buy and limit <= max(sl)) or (not buy and limit >= min(sl))):
        raise InvalidInput(
            "limit_price: must stay on the entry side of the stop-loss",
            details={"limit_price": ["must stay on the entry side of the stop-loss"]},
        )
    if targets and ((buy and limit >= min(targets)) or (not buy and limit <= max(targets))):
        raise InvalidInput(
            "limit_price: must stay short of the targets",
            details={"limit_price": ["must stay short of the targets"]},
        )


def _modify_leg(
    *, order: Order, leg: OrderLeg, quantity: int, limit_price, stop_price, actor: str, kind: str
) -> OrderLeg:
    before = leg_state(leg)
    try:
        ack = modify_at_broker(
            leg, order, quantity=quantity, limit_price=limit_price, stop_price=stop_price
        )
    except BrokerError as exc:
        record_event(
            order=order,
            leg=leg,
            kind=f"{kind}_failed",
            actor=actor,
            message=exc.message,
            before=before,
            broker_response=exc.response,
        )
        raise _broker_failure(exc, order=order, leg=leg, what="modification") from exc
    with transaction.atomic():
        leg.quantity, leg.limit_price, leg.stop_price = quantity, limit_price, stop_price
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
            order.limit_price, order.stop_price = limit_price, stop_price
            order_fields += ["limit_price", "stop_price"]
            if order.kind == Order.Kind.SINGLE:
                order.quantity = quantity
                order_fields.append("quantity")
        elif leg.role == Role.STOP_LOSS:
            # Later SL legs (more fills) use the moved prices too (trailing stop-loss).
            if leg.order_type == OrderType.STOPLIMIT:
                order.sl_price, order.sl_stop_price = limit_price, stop_price
                order_fields += ["sl_price", "sl_stop_price"]
            else:
                order.sl_price = stop_price
                order_fields.append("sl_price")
        order.save(update_fields=order_fields)
        record_event(
            order=order,
            leg=leg,
            kind=kind,
            actor=actor,
            message=f"{leg.role} leg {leg.unique_identifier} modified",
            before=before,
            after=leg_state(leg),
            broker_response=ack.raw,
        )
        notify_order(order, event=kind, leg_id=leg.pk)
    return leg


def reprice_leg(
    *,
    leg: OrderLeg,
    new_limit_price: Decimal | None,
    new_stop_price: Decimal | None = None,
    actor: str,
) -> OrderLeg:
    """Steps 5-6: move a working leg's limit (and optionally stop) price at the broker.
    Raises BrokerRejectedError / BrokerUnavailableError (audited) when the broker refuses."""
    leg = OrderLeg.objects.select_related("order", "order__account").get(pk=leg.pk)
    order = leg.order
    if leg.status not in WORKING or not leg.broker_order_id:
        raise Conflict(
            f"The leg is {leg.status}; only working legs can be re-priced",
            details={"leg_id": leg.pk},
        )
    has_limit = leg.order_type in (OrderType.LIMIT, OrderType.STOPLIMIT)
    limit = (
        (new_limit_price if new_limit_price is not None else leg.limit_price) if has_limit else None
    )
    stop = new_stop_price if new_stop_price is not None else leg.stop_price
    if limit == leg.limit_price and stop == leg.stop_price:
        return leg
    return _modify_leg(
        order=order,
        leg=leg,
        quantity=leg.quantity,
        limit_price=limit,
        stop_price=stop,
        actor=actor,
        kind="leg_repriced",
    )


# ---- cancel ------------------------------------------------------------------------------------


def cancel_order(*, order: Order, actor: str) -> Order:
    """POST /api/orders/{id}/cancel: cancel the order's unfilled entry at the broker. For a
    bracket whose entry already filled in part, the stop-loss and targets keep protecting
    the filled part (use the kill switch to flatten everything)."""
    legs = list(order.legs.order_by("id"))
    entry = primary_leg(order.kind, legs)
    if entry is None or entry.status not in OPEN_LEG_STATUSES:
        raise Conflict(
            f"The order is {order.status}; there is nothing to cancel",
            details={"order_id": order.pk, "status": order.status},
        )
    if entry.status == LegStatus.PENDING_SUBMIT or not entry.broker_order_id:
        raise Conflict(
            "The broker has not acknowledged the order yet; try again after the next sync",
            details={"order_id": order.pk, "status": order.status},
        )
    _cancel_leg(order=order, leg=entry, actor=actor, kind="leg_cancelled", raise_errors=True)
    roll_up_orders(order_ids=[order.pk], actor=actor)
    order.refresh_from_db()
    return order


def _cancel_leg(*, order: Order, leg: OrderLeg, actor: str, kind: str, raise_errors: bool):
    before = leg_state(leg)
    try:
        ack = cancel_at_broker(leg, order.account)
    except BrokerError as exc:
        record_event(
            order=order,
            leg=leg,
            kind=f"{kind}_failed",
            actor=actor,
            message=exc.message,
            before=before,
            broker_response=exc.response,
        )
        if raise_errors:
            raise _broker_failure(exc, order=order, leg=leg, what="cancellation") from exc
        return exc
    with transaction.atomic():
        leg.status = LegStatus.CANCELLED
        leg.save(update_fields=["status", "updated_at"])
        record_event(
            order=order,
            leg=leg,
            kind=kind,
            actor=actor,
            message=f"{leg.role} leg {leg.unique_identifier} cancelled",
            before=before,
            after=leg_state(leg),
            broker_response=ack.raw,
        )
    return None


# ---- kill switch --------------------------------------------------------------------------------


@dataclass
class KillSwitchResult:
    cancelled_legs: list[str] = field(default_factory=list)
    exit_legs: list[str] = field(default_factory=list)
    exit_order_ids: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.errors


def kill_switch(*, account: BrokerAccount, actor: str) -> KillSwitchResult:
    """Cancel every working leg of the account and square off every position the broker
    reports with MARKET exit legs. Each step is audited; a failure of one leg is reported
    and the rest still proceed. Live orders are marked exit-requested first, so the
    monitoring loop does not put new stop-losses or targets back meanwhile."""
    result = KillSwitchResult()
    now = timezone.now()
    with transaction.atomic():
        live = list(
            Order.objects.select_for_update().filter(
                account=account, status__in=LIVE_ORDER_STATUSES
            )
        )
        Order.objects.filter(pk__in=[o.pk for o in live]).update(
            exit_requested_at=now, updated_at=now
        )
        OrderEvent.objects.bulk_create(
            [
                new_event(
                    order=o,
                    kind="kill_switch",
                    actor=actor,
                    message="kill switch: cancel all and square off",
                )
                for o in live
            ]
        )
    working = list(
        OrderLeg.objects.filter(account=account, status__in=OPEN_LEG_STATUSES)
        .select_related("order", "order__account")
        .order_by("id")
    )
    for leg in working:
        if leg.status == LegStatus.PENDING_SUBMIT or not leg.broker_order_id:
            result.errors.append(
                f"leg {leg.unique_identifier} is not acknowledged by the broker yet; "
                "it cannot be cancelled until the next sync"
            )
            continue
        error = _cancel_leg(
            order=leg.order, leg=leg, actor=actor, kind="kill_switch_cancel", raise_errors=False
        )
        if error is None:
            result.cancelled_legs.append(leg.unique_identifier)
        else:
            result.errors.append(f"cancel {leg.unique_identifier}: {error.message}")
    try:
        positions = async_to_sync(client_for(account).positions)()
    except BrokerError as exc:
        result.errors.append(f"positions unavailable, nothing squared off: {exc.message}")
        positions = []
    pairs = _write_ahead_exits(account=account, positions=positions, actor=actor, result=result)
    if pairs:
        outcomes = send_and_record_legs(account=account, pairs=pairs, actor=actor)
        for outcome in outcomes:
            if outcome.rejected_reason:
                result.errors.append(
                    f"exit {outcome.leg.unique_identifier} rejected: {outcome.rejected_reason}"
                )
            else:
                result.exit_legs.append(outcome.leg.unique_identifier)
    roll_up_orders(order_ids=sorted({o.pk for o in live} | {o.pk for _, o in pairs}), actor=actor)
    return result


def _chunks(quantity: int, freeze: int | None) -> list[int]:
    if not freeze or quantity <= freeze:
        return [quantity]
    full, rest = divmod(quantity, freeze)
    return [freeze] * full + ([rest] if rest else [])


def _write_ahead_exits(*, account, positions, actor, result) -> list[tuple[OrderLeg, Order]]:
    """MARKET exit legs for every non-flat position: first on the brackets holding it (so
    their books close), the remainder as kill-switch orders; split at the freeze quantity."""
    pairs: list[tuple[OrderLeg, Order]] = []
    ensure_daily_counter(account_id=account.pk)
    brackets = list(
        Order.objects.filter(
            account=account,
            kind=Order.Kind.BRACKET,
            filled_quantity__gt=0,
            status__in=(Order.Status.PARTIALLY_FILLED, Order.Status.FILLED),
        )
        .prefetch_related("legs")
        .select_related("instrument")
    )
    for position in positions:
        if position.net_qty is None:
            # Never guess (nor skip quietly): the trader must square this one off by hand.
            result.errors.append(
                f"position {position.exchange_segment}:{position.exchange_instrument_id} "
                f"{position.product_type}: the broker's quantity is unreadable, nothing "
                "squared off; square it off at the broker"
            )
            continue
        if not position.net_qty:
            continue
        exit_side = Side.SELL if position.net_qty > 0 else Side.BUY
        left = abs(position.net_qty)
        instrument = Instrument.objects.filter(
            exchange_segment=position.exchange_segment,
            exchange_instrument_id=position.exchange_instrument_id,
        ).first()
        if instrument is None:
            result.errors.append(
                f"position {position.exchange_segment}:{position.exchange_instrument_id} has no "
                "known instrument; square it off at the broker"
            )
            continue
        freeze = instrument.freeze_quantity
        with transaction.atomic():
            specs: list[tuple[Order, int]] = []
            for order in brackets:
                if left <= 0:
                    break
                if (
                    order.instrument_id != instrument.pk
                    or order.product_type != position.product_type
                    or order.side == exit_side
                ):
                    continue
                open_qty = min(open_position_of(list(order.legs.all())), left)
                for chunk in _chunks(open_qty, freeze) if open_qty > 0 else []:
                    specs.append((order, chunk))
                left -= max(open_qty, 0)
            if specs:
                identifiers = next_unique_identifiers(account_id=account.pk, count=len(specs))
                for (order, chunk), identifier in zip(specs, identifiers, strict=True):
                    leg = OrderLeg.objects.create(
                        order=order,
                        account=account,
                        role=Role.EXIT,
                        order_type=OrderType.MARKET,
                        side=exit_side,
                        quantity=chunk,
                        unique_identifier=identifier,
                        status=LegStatus.PENDING_SUBMIT,
                    )
                    record_event(
                        order=order,
                        leg=leg,
                        kind="exit_created",
                        actor=actor,
                        message=f"kill switch: square off {chunk}",
                        after=leg_state(leg),
                    )
                    pairs.append((leg, order))
            plans = [
                OrderPlan(
                    user_id=account.user_id,
                    account=account,
                    instrument=instrument,
                    strategy=None,
                    kind=Order.Kind.SINGLE,
                    source=Order.Source.KILL_SWITCH,
                    side=exit_side,
                    product_type=position.product_type,
                    quantity=chunk,
                    order_type=OrderType.MARKET,
                    limit_price=None,
                    stop_price=None,
                    external_id="kill-switch",
                    leg_role=Role.EXIT,
                )
                for chunk in (_chunks(left, freeze) if left > 0 else [])
            ]
            for order in write_ahead(plans=plans, actor=actor):
                pairs.append((order.entry_leg, order))
                result.exit_order_ids.append(order.pk)
    return pairs
