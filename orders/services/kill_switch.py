"""The kill switch: lock the account's trading, cancel every working leg and square off
every position with MARKET exits, all audited. Broker calls happen outside any transaction,
as in changes. The lock comes first (orders.services.trading_lock): no new order gets in
while the rest runs, and none after it until the trader re-enables trading.

It never leaves a filled bracket without its stop-loss. The order of the work sees to it:
1. every working leg but the brackets' stop-loss and targets is cancelled (entries first:
   no position grows while the rest runs);
2. the broker's positions are read. When they cannot be, nothing is squared off and the
   stop-loss and targets are never cancelled;
3. the stop-loss and targets are cancelled, and the positions read again: what the exits
   are measured from is read after the cancels it depends on (a stop-loss that filled
   meanwhile is in it). Unreadable now, the stop-loss and targets are placed again at once;
4. MARKET exits for every position, except one that a leg still working at the broker (one
   the broker would not cancel, or has not acknowledged yet) could close too: a market exit
   beside it could exit twice and reverse the position;
5. a bracket whose position was not squared off (its exit rejected, held back, or never
   written) is no longer exit-requested and gets back, at once, what the cancels took from
   it. The answer names every such bracket, and any whose stop-loss could not be placed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asgiref.sync import async_to_sync
from django.db import transaction

from accounts.models import BrokerAccount
from orders.brokers.base import BrokerError, BrokerPositionRow
from orders.domain.rollup import open_position_of
from orders.domain.vocabulary import OPEN_LEG_STATUSES, EventKind
from orders.models import Order, OrderLeg, Side
from orders.selectors import orders_with_legs
from orders.services.audit import record_account_event
from orders.services.broker_calls import client_for
from orders.services.changes import cancel_working_legs
from orders.services.exclusion import account_exclusion
from orders.services.position_changes import (
    ExitReport,
    PositionKey,
    clear_exit_requested,
    mark_exit_requested,
    order_position_key,
    position_key,
    send_exits,
    write_ahead_exits,
)
from orders.services.protection import lacks_stop_loss, protect_orders
from orders.services.resync import refresh_legs_from_broker
from orders.services.sync import LIVE_ORDER_STATUSES, roll_up_orders
from orders.services.trading_lock import lock_trading

Role = OrderLeg.Role
PROTECTIVE_ROLES = (Role.STOP_LOSS, Role.TAKE_PROFIT)


@dataclass
class KillSwitchResult(ExitReport):
    # The orders whose working legs were cancelled, and one phrase per position squared
    # off ("RELIANCE 10 sold at market").
    cancelled_order_ids: list[int] = field(default_factory=list)
    squared_off: list[str] = field(default_factory=list)
    trading_locked: bool = True
    # Brackets whose position was not squared off: protected (their stop-loss and targets
    # kept, or placed again at once), or not (the stop-loss could not be placed: the trader
    # must act at the broker). One phrase each ("RELIANCE (order 12): stop-loss and targets
    # kept").
    protected_order_ids: list[int] = field(default_factory=list)
    unprotected_order_ids: list[int] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)
    unprotected: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """What was done, in plain words, for the trader."""
        orders = len(self.cancelled_order_ids)
        positions = len(self.squared_off)
        parts = [
            f"Cancelled {orders} open order{'' if orders == 1 else 's'}",
            f"squared off {positions} position{'' if positions == 1 else 's'}"
            + (f" ({', '.join(self.squared_off)})" if self.squared_off else ""),
        ]
        text = ", ".join(parts) + "; trading is locked until you re-enable it."
        if self.unprotected:
            text += (
                " NOT squared off and WITHOUT a stop-loss, square off at the broker now: "
                + "; ".join(self.unprotected)
                + "."
            )
        if self.protected:
            text += " Not squared off, still protected: " + "; ".join(self.protected) + "."
        if self.errors:
            text += f" Not done ({len(self.errors)}): " + "; ".join(self.errors)
        return text


def kill_switch(*, account: BrokerAccount, actor: str) -> KillSwitchResult:
    """Cancel every working leg of the account and square off every position the broker
    reports with MARKET exit legs, never leaving a filled bracket without its stop-loss
    (the module docstring says how). Each step is audited; a failure of one leg is reported
    and the rest still proceed. Live orders are marked exit-requested first, so the
    monitoring loop does not put new stop-losses or targets back meanwhile (a bracket not
    squared off is unmarked again at the end).

    All of it under the account's exclusion, and on fresh knowledge: the broker's order
    book is read and applied first, so a stop-loss that filled a moment ago is known as
    filled (its position is squared off, it is not cancelled). Trading is locked before
    anything else, even before waiting for the exclusion: if the account stays busy and
    the rest must be asked again, no new order gets in meanwhile."""
    lock_trading(account=account, actor=actor)
    with account_exclusion(account.pk, purpose="kill switch"):
        result = _kill_switch(account=account, actor=actor)
    record_account_event(
        account,
        actor=actor,
        kind=EventKind.KILL_SWITCH_COMPLETED
        if result.complete
        else EventKind.KILL_SWITCH_INCOMPLETE,
        message=result.summary,
    )
    return result


def _kill_switch(*, account: BrokerAccount, actor: str) -> KillSwitchResult:
    result = KillSwitchResult()
    with transaction.atomic():
        live = list(
            Order.objects.select_for_update().filter(
                account=account, status__in=LIVE_ORDER_STATUSES
            )
        )
        mark_exit_requested(
            orders=live,
            actor=actor,
            kind=EventKind.KILL_SWITCH,
            message="kill switch: cancel all and square off",
        )
    # As read before the mark: those this kill switch marked have none.
    marked = [o for o in live if o.kind == Order.Kind.BRACKET and o.exit_requested_at is None]
    try:
        snapshot = refresh_legs_from_broker(account=account, actor=actor)
        if "order_book" in snapshot.errors:
            reason = snapshot.errors["order_book"].message
            result.errors.append(
                f"order book unavailable ({reason}): acting on the last known leg states"
            )
    except BrokerError as exc:
        result.errors.append(f"broker unavailable ({exc.message}): acting on the last known state")
    working = list(
        OrderLeg.objects.filter(account=account, status__in=OPEN_LEG_STATUSES)
        .select_related("order", "order__account")
        .order_by("id")
    )
    # 1. Everything but the stop-losses and targets; 2. the positions, readable or not.
    still_working = _cancel(
        [leg for leg in working if leg.role not in PROTECTIVE_ROLES], actor=actor, result=result
    )
    protective = [leg for leg in working if leg.role in PROTECTIVE_ROLES]
    positions = _read_positions(account, result, when="")
    if positions is not None and protective:
        # 3. The stop-losses and targets, and the positions as they left them.
        still_working += _cancel(protective, actor=actor, result=result)
        positions = _read_positions(account, result, when=" after the stop-losses were cancelled")
    cancelled = set(result.cancelled_legs)
    pairs: list[tuple[OrderLeg, Order]] = []
    if positions is None:
        reasons = dict.fromkeys([o.pk for o in marked], "the broker's positions could not be read")
    else:
        # 4. The exits.
        pairs, reasons = _square_off(
            account,
            positions,
            marked=marked,
            still_working=still_working,
            actor=actor,
            result=result,
        )
    # 5. Whatever was not squared off stays protected.
    _keep_protected(
        account,
        marked,
        reasons=reasons,
        placed_again={leg.order_id for leg in protective if leg.unique_identifier in cancelled},
        actor=actor,
        result=result,
    )
    roll_up_orders(order_ids=sorted({o.pk for o in live} | {o.pk for _, o in pairs}), actor=actor)
    return result


def _square_off(
    account: BrokerAccount,
    positions: list[BrokerPositionRow],
    *,
    marked: list[Order],
    still_working: list[OrderLeg],
    actor: str,
    result: KillSwitchResult,
) -> tuple[list[tuple[OrderLeg, Order]], dict[int, str]]:
    """MARKET exits for `positions` (read after the cancels) but those held back. Returns
    the exit legs written, with their orders, and why each bracket of `marked` whose
    position was not squared off was not (by order id)."""
    held_back = _held_back(positions, still_working, result)
    chosen = [p for p in positions if position_key(p) not in held_back]
    pairs = write_ahead_exits(account=account, positions=chosen, actor=actor, result=result)
    outcomes = send_exits(account=account, pairs=pairs, actor=actor, result=result)
    sent: dict[tuple[str, str], int] = {}
    on_their_way: set[int] = set()
    rejected: dict[int, str] = {}
    for outcome, (_leg, order) in zip(outcomes, pairs, strict=True):
        if outcome.rejected_reason:
            rejected[order.pk] = f"its exit was rejected: {outcome.rejected_reason}"
            continue
        on_their_way.add(order.pk)
        symbol_side = (order.symbol, outcome.leg.side)
        sent[symbol_side] = sent.get(symbol_side, 0) + outcome.leg.quantity
    result.squared_off = [
        f"{symbol} {quantity} {'sold' if side == Side.SELL else 'bought'} at market"
        for (symbol, side), quantity in sent.items()
    ]
    written = {order_position_key(order) for _leg, order in pairs}
    unwritten = {
        position_key(p) for p in chosen if p.net_qty != 0 and position_key(p) not in written
    }
    reasons: dict[int, str] = {}
    for order in marked:
        position = order_position_key(order)
        if order.pk in on_their_way:
            if order.pk in rejected:
                # Some of its exits went out, some were refused: what they leave open has
                # no stop-loss (one placed now could close it twice once the exits fill).
                result.unprotected_order_ids.append(order.pk)
                result.unprotected.append(f"{_named(order)}: part of its exit was rejected")
        elif position in held_back:
            reasons[order.pk] = held_back[position]
        elif order.pk in rejected:
            reasons[order.pk] = rejected[order.pk]
        elif position in unwritten:
            reasons[order.pk] = "no exit could be written for it"
    return pairs, reasons


def _cancel(legs: list[OrderLeg], *, actor: str, result: KillSwitchResult) -> list[OrderLeg]:
    """Cancel `legs` at the broker, reporting each one that was not; returns those that may
    still be working there."""
    attempts = cancel_working_legs(
        legs,
        actor=actor,
        kind=EventKind.KILL_SWITCH_CANCEL,
        failed_kind=EventKind.KILL_SWITCH_CANCEL_FAILED,
    )
    still_working = []
    for attempt in attempts:
        leg = attempt.leg
        if attempt.cancelled:
            result.cancelled_legs.append(leg.unique_identifier)
            if leg.order_id not in result.cancelled_order_ids:
                result.cancelled_order_ids.append(leg.order_id)
            continue
        still_working.append(leg)
        if attempt.error is None:
            result.errors.append(
                f"leg {leg.unique_identifier} is not acknowledged by the broker yet; "
                "it cannot be cancelled until the next sync"
            )
        else:
            result.errors.append(f"cancel {leg.unique_identifier}: {attempt.error.message}")
    return still_working


def _read_positions(
    account: BrokerAccount, result: KillSwitchResult, *, when: str
) -> list[BrokerPositionRow] | None:
    """The broker's positions now; None (reported) when they cannot be read."""
    try:
        return async_to_sync(client_for(account).positions)()
    except BrokerError as exc:
        result.errors.append(f"positions unavailable{when}, nothing squared off: {exc.message}")
        return None


def _held_back(
    positions: list[BrokerPositionRow], still_working: list[OrderLeg], result: KillSwitchResult
) -> dict[PositionKey, str]:
    """The positions not to square off, each with why: a leg on the exit's side still
    working at the broker (not cancelled) could close the position too, and a market exit
    beside it would then exit twice (a stop-loss filling after the exit reverses the
    position)."""
    working_by_position: dict[PositionKey, list[OrderLeg]] = {}
    for leg in still_working:
        working_by_position.setdefault(order_position_key(leg.order), []).append(leg)
    held: dict[PositionKey, str] = {}
    for position in positions:
        if not position.net_qty:
            continue
        key = position_key(position)
        exit_side = Side.SELL if position.net_qty > 0 else Side.BUY
        closing = [leg for leg in working_by_position.get(key, []) if leg.side == exit_side]
        if not closing:
            continue
        names = ", ".join(leg.unique_identifier for leg in closing)
        held[key] = f"leg {names} could not be cancelled and may still close it"
        label = position.trading_symbol or f"{key[0]}:{key[1]}"
        result.errors.append(
            f"{label} {key[2]}: not squared off, leg {names} could not be cancelled and may "
            "still fill (a market exit beside it could exit twice)"
        )
    return held


def _named(order: Order) -> str:
    return f"{order.symbol} (order {order.pk})"


def _keep_protected(
    account: BrokerAccount,
    brackets: list[Order],
    *,
    reasons: dict[int, str],
    placed_again: set[int],
    actor: str,
    result: KillSwitchResult,
) -> None:
    """The brackets of `brackets` named in `reasons` (by order id: why their position was
    not squared off) that hold a position are no longer exit-requested, and what the kill
    switch's cancels took from their stop-loss and targets (`placed_again`: the orders it
    cancelled some of) is placed again now: protection's step 4 for them. Each is audited
    and named in `result`: protected, or not when its stop-loss could not be placed."""
    holding = [
        order
        for order, legs in orders_with_legs([o.pk for o in brackets if o.pk in reasons])
        if open_position_of(legs) > 0
    ]
    if not holding:
        return
    clear_exit_requested(
        orders=holding,
        actor=actor,
        kind=EventKind.KILL_SWITCH_PROTECTION_KEPT,
        messages={
            order.pk: f"kill switch: position not squared off ({reasons[order.pk]}); its "
            + (
                "stop-loss and targets are placed again at once"
                if order.pk in placed_again
                else "stop-loss and targets stay working"
            )
            for order in holding
        },
    )
    ids = [order.pk for order in holding]
    result.errors += protect_orders(
        account=account, orders=orders_with_legs(ids), actor=actor
    ).errors
    for order, legs in orders_with_legs(ids):
        if lacks_stop_loss(order, legs):
            result.unprotected_order_ids.append(order.pk)
            result.unprotected.append(f"{_named(order)}: its stop-loss could not be placed again")
        else:
            result.protected_order_ids.append(order.pk)
            result.protected.append(
                f"{_named(order)}: stop-loss and targets "
                + ("placed again" if order.pk in placed_again else "kept")
            )
