"""Monitoring step 4: protect filled entries with SL/TP legs, one-cancels-other.

For every bracket whose entry has filled quantity:
- first the exits that would now close more than the open position (a target or the
  stop-loss filled, partly or fully) are reduced or cancelled at the broker, newest first;
- then, unless the trader or the kill switch asked to exit, new SL and TP legs are written
  ahead and sent for exactly the uncovered quantity: a partial fill is protected at once and
  later fills add more legs. Targets fill in the order given (target 1 takes the first lots).
  New legs never cover what the bracket's exits working will close: a bracket the trader
  partly reduced (its own MARKET exits, orders.services.position_changes) stays protected as
  its entry keeps filling, for its open position less what its reduction still working
  closes (which trims its stop-loss and targets once it fills: a reduction refused leaves
  them whole).
  An exit asked for that the broker refused (at once or after accepting it) closes nothing:
  the position is protected again, and the order no longer exit-requested. An exit refused
  in part (split at the freeze quantity, some slices rejected) leaves the order
  exit-requested, and its stop-loss and targets cover only what no exit is taking
  (`exiting_quantity`): never the same quantity twice once the exits working fill, all of
  what is left once they are refused too;
- an exit-requested bracket whose entry (one the exit could not cancel) fills later has the
  fill squared off at once, and what of the entry still works cancelled
  (orders.services.late_fills);
- once the entry is final and the exits have closed the whole position, the Order is
  COMPLETED and any exit still working is cancelled.
Nothing covers what the broker did not hold of the bracket's position when an exit path last
measured it (`Order.broker_shortfall`, orders.domain.exit_sizing): a stop-loss or target
beyond what the broker holds would open a position the other way once it filled.
The plan itself (`plan_exits`) is pure arithmetic on the legs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from django.db import transaction
from django.db.models import Q, QuerySet

from accounts.models import BrokerAccount
from orders.brokers.base import BrokerError
from orders.domain.exit_sizing import protectable
from orders.domain.lifecycle import LegEvent, LegEventKind
from orders.domain.rollup import derive_order_status, open_position_of
from orders.domain.vocabulary import EXIT_ROLES, OPEN_LEG_STATUSES, EventKind, LegStatus
from orders.models import Order, OrderLeg, OrderType
from orders.selectors import locked_order_with_legs, orders_with_legs
from orders.services.audit import (
    leg_change,
    new_event,
    record_accepted_change,
    record_broker_error,
    record_changes,
)
from orders.services.broker_calls import cancel_at_broker, modify_at_broker, submit_legs
from orders.services.exclusion import account_exclusion, fence
from orders.services.identifiers import ensure_daily_counter, next_unique_identifiers
from orders.services.late_fills import late_fill_quantity, square_off_late_fill
from orders.services.lifecycle import INITIAL_STATUS, apply_accepted_change
from orders.services.position_changes import (
    ExitReport,
    clear_exit_requested,
    exit_side_of,
    working_quantity,
)
from orders.services.sync import MONITORING_ACTOR, roll_up_orders
from trading_site.core.bulk_rows import insert_rows
from trading_site.core.prepared import PreparedRows

logger = logging.getLogger("orders.services")
Role = OrderLeg.Role


class ProtectiveLegsIncomplete(Exception):
    """Some brackets could not be fully protected this cycle; the message lists why. Raised
    after every bracket was attempted, so one failure never blocks the others."""


@dataclass
class Reduction:
    leg: OrderLeg
    remaining: int  # the leg's new unfilled quantity; 0 = cancel


@dataclass
class NewExit:
    role: str
    quantity: int
    target_index: int | None = None


@dataclass
class ExitPlan:
    reductions: list[Reduction] = field(default_factory=list)
    new_exits: list[NewExit] = field(default_factory=list)
    position: int = 0
    exiting: int = 0  # of the position, what exits working take: no new leg covers it
    # Of the position, what the broker did not hold when an exit path measured it
    # (Order.broker_shortfall): no leg covers it either.
    shortfall: int = 0


@dataclass
class ProtectionResult:
    placed: list[str] = field(default_factory=list)
    reduced: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    completed_order_ids: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _remaining(leg: OrderLeg) -> int:
    return max(0, leg.quantity - leg.filled_quantity) if leg.status in OPEN_LEG_STATUSES else 0


def _effective(leg: OrderLeg) -> int:
    """What a leg can still close or has closed: all of it while working or filled, only
    its fills once cancelled or rejected."""
    if leg.status in OPEN_LEG_STATUSES or leg.status == LegStatus.FILLED:
        return leg.quantity
    return leg.filled_quantity


def plan_exits(
    *,
    legs: list[OrderLeg],
    target_quantities: list[int],
    may_add: bool,
    exit_requested: bool = False,
    shortfall: int = 0,
) -> ExitPlan:
    """Reductions so that neither the SL legs nor the TP legs together may close more than
    they may cover, then the new legs that cover what is uncovered: the open position less
    what the exit legs working (or unanswered) will close. An exit-requested bracket's
    stop-loss and targets are trimmed to that too (its exits take the rest); a bracket's own
    reduction trims them only once it fills, so that a reduction refused leaves them whole.
    `shortfall`: what of the open position the broker does not hold (Order.broker_shortfall):
    no stop-loss or target covers it (one would open a position the other way)."""
    position = open_position_of(legs)
    held = protectable(position, shortfall)
    entry_filled = sum(leg.filled_quantity for leg in legs if leg.role == Role.ENTRY)
    plan = ExitPlan(
        position=position,
        exiting=exiting_quantity(legs, shortfall),
        shortfall=position - held,
    )
    uncovered = held - plan.exiting
    cover = uncovered if exit_requested else held
    remaining_after: dict[str, int] = {}
    for role in (Role.STOP_LOSS, Role.TAKE_PROFIT):
        working = sorted(
            (leg for leg in legs if leg.role == role and _remaining(leg) > 0),
            key=lambda leg: ((leg.target_index or 0), leg.pk or 0),
            reverse=True,
        )
        total = sum(_remaining(leg) for leg in working)
        excess = total - cover
        for leg in working:
            if excess <= 0:
                break
            if not leg.broker_order_id or leg.status == LegStatus.PENDING_SUBMIT:
                continue  # not acknowledged yet: nothing to change at the broker
            current = _remaining(leg)
            new_remaining = max(0, current - excess)
            excess -= current - new_remaining
            total -= current - new_remaining
            plan.reductions.append(Reduction(leg=leg, remaining=new_remaining))
        remaining_after[role] = total
    if not may_add or uncovered <= 0:
        return plan
    need_sl = uncovered - remaining_after[Role.STOP_LOSS]
    if need_sl > 0:
        plan.new_exits.append(NewExit(role=Role.STOP_LOSS, quantity=need_sl))
    room = uncovered - remaining_after[Role.TAKE_PROFIT]
    allotted_before = 0
    for index, target_quantity in enumerate(target_quantities):
        allotted = min(target_quantity, max(0, entry_filled - allotted_before))
        allotted_before += target_quantity
        covered = sum(
            _effective(leg)
            for leg in legs
            if leg.role == Role.TAKE_PROFIT and (leg.target_index or 0) == index
        )
        take = min(allotted - covered, room)
        if take > 0:
            plan.new_exits.append(NewExit(role=Role.TAKE_PROFIT, quantity=take, target_index=index))
            room -= take
    return plan


def lacks_stop_loss(order: Order, legs: list[OrderLeg]) -> bool:
    """Whether part of the bracket's open position has no working (or unanswered) stop-loss
    leg to close it: what step 4 would place a stop-loss for."""
    plan = _order_exit_plan(order, legs, may_add=True)
    return any(spec.role == Role.STOP_LOSS for spec in plan.new_exits)


def exiting_quantity(legs: list[OrderLeg], shortfall: int = 0) -> int:
    """What of the bracket's open position the broker holds (all of it but `shortfall`) its
    exit legs working (or unanswered) will close: no new stop-loss or target covers it, so
    that none closes what an exit closes too."""
    return min(working_quantity(legs), protectable(open_position_of(legs), shortfall))


def uncovered_quantity(order: Order, legs: list[OrderLeg]) -> int:
    """What of the bracket's open position the broker holds and no exit working closes:
    what its stop-loss and targets are to cover once an exit was asked for."""
    held = protectable(open_position_of(legs), order.broker_shortfall)
    return held - exiting_quantity(legs, order.broker_shortfall)


def _exit_leg(order: Order, spec: NewExit, identifier: str) -> OrderLeg:
    limit: Decimal | None
    stop: Decimal | None
    if spec.role == Role.STOP_LOSS:
        if order.sl_stop_price is not None:
            order_type, limit, stop = OrderType.STOPLIMIT, order.sl_price, order.sl_stop_price
        else:
            order_type, limit, stop = OrderType.STOPMARKET, None, order.sl_price
    else:
        order_type = OrderType.LIMIT
        limit, stop = Decimal(str(order.targets[spec.target_index]["price"])), None
    return OrderLeg(
        order=order,
        account_id=order.account_id,
        role=spec.role,
        order_type=order_type,
        side=exit_side_of(order),
        quantity=spec.quantity,
        limit_price=limit,
        stop_price=stop,
        target_index=spec.target_index,
        unique_identifier=identifier,
        status=INITIAL_STATUS,
    )


def _target_quantities(order: Order) -> list[int]:
    return [int(target["quantity"]) for target in (order.targets or [])]


def _order_exit_plan(order: Order, legs: list[OrderLeg], *, may_add: bool) -> ExitPlan:
    """`plan_exits` for the bracket's legs, by its targets, its exit request and what the
    broker holds less of than the desk."""
    return plan_exits(
        legs=legs,
        target_quantities=_target_quantities(order),
        may_add=may_add,
        exit_requested=order.exit_requested_at is not None,
        shortfall=order.broker_shortfall,
    )


def exit_refused(order: Order, legs: list[OrderLeg]) -> bool:
    """Whether an exit was asked for (the kill switch, a position exit or change, a late
    fill's square-off) and every exit leg written for it since ended without a fill
    (rejected, at once or after the broker had accepted it, or cancelled), none other
    working: nothing is closing the position any more."""
    if order.exit_requested_at is None:
        return False
    exits = [leg for leg in legs if leg.role == Role.EXIT]
    since = [leg for leg in exits if leg.created_at >= order.exit_requested_at]
    return (
        bool(since)
        and all(
            leg.status in (LegStatus.REJECTED, LegStatus.CANCELLED) and not leg.filled_quantity
            for leg in since
        )
        and not working_quantity(exits)
    )


def exit_refused_in_part(order: Order, legs: list[OrderLeg]) -> bool:
    """Whether an exit was asked for and some exit leg written for it since ended with part
    of it unfilled (rejected, at once or after the broker had accepted it, or cancelled):
    what that part was to close, nothing closes any more (`exit_refused`: all of it)."""
    if order.exit_requested_at is None:
        return False
    return any(
        leg.role == Role.EXIT
        and leg.created_at >= order.exit_requested_at
        and leg.status in (LegStatus.REJECTED, LegStatus.CANCELLED)
        and leg.filled_quantity < leg.quantity
        for leg in legs
    )


def _late_fill(order: Order, legs: list[OrderLeg]) -> int:
    """What of an exit-requested bracket's entry filled late, to square off now
    (`late_fill_quantity`); none once its exit was refused (it is protected instead)."""
    return 0 if exit_refused(order, legs) else late_fill_quantity(order, legs)


def _may_add(order: Order, legs: list[OrderLeg]) -> bool:
    """No new protection once an exit was asked for (kill switch, position exit, a late
    fill's square-off), but when that exit was refused: in whole (`exit_refused`: the
    position is protected again, an earlier exit that filled part of it, before a late
    fill's, notwithstanding) or in part (`exit_refused_in_part`: what its exits working do
    not take). A bracket not exit-requested is protected whatever exits it has: a partial
    reduction's exit, filled or working, leaves the rest of its position, and what its
    entry fills next, to protect (`plan_exits` leaves out what exits working close)."""
    return order.exit_requested_at is None or exit_refused_in_part(order, legs)


def _locked_legs(account: BrokerAccount, order_id: int) -> tuple[Order, list[OrderLeg]]:
    """The order (locked) and its legs; `order.account` is the caller's `account` (the
    candidates are read by account: `brackets_to_protect`), not read again."""
    order, legs = locked_order_with_legs(order_id)
    order.account = account
    fence(order.account_id)
    return order, legs


def _apply_reduction(
    order: Order, reduction: Reduction, actor: str, result: ProtectionResult
) -> bool:
    leg = reduction.leg
    new_quantity = leg.filled_quantity + reduction.remaining
    try:
        if reduction.remaining == 0:
            ack = cancel_at_broker(leg, order.account)
        else:
            ack = modify_at_broker(
                leg,
                order,
                quantity=new_quantity,
                limit_price=leg.limit_price,
                stop_price=leg.stop_price,
            )
    except BrokerError as exc:
        record_broker_error(
            exc,
            order=order,
            leg=leg,
            kind=EventKind.EXIT_REDUCE_FAILED,
            actor=actor,
            doing="could not reduce or cancel",
        )
        result.errors.append(
            f"order {order.pk}: could not reduce {leg.role} leg {leg.unique_identifier}: "
            f"{exc.message}"
        )
        return False
    with transaction.atomic():
        if reduction.remaining == 0:
            event = LegEvent(LegEventKind.CANCEL_CONFIRMED)
        else:
            event = LegEvent(LegEventKind.MODIFY_ACCEPTED, quantity=new_quantity)
        before = apply_accepted_change(leg, event, actor=actor, source="protection", order=order)
        if before is None:
            # The leg moved meanwhile (typically: it filled before the broker took the
            # change); the next cycle plans again from what it is now.
            return True
        if reduction.remaining == 0:
            kind, message = EventKind.EXIT_CANCELLED, "one-cancels-other: nothing left to close"
            result.cancelled.append(leg.unique_identifier)
        else:
            kind = EventKind.EXIT_REDUCED
            message = f"one-cancels-other: reduced to {reduction.remaining} open"
            result.reduced.append(leg.unique_identifier)
        leg.modification_count += 1
        leg.save(update_fields=["status", "quantity", "modification_count", "updated_at"])
        record_accepted_change(
            order, leg, ack, kind=kind, actor=actor, message=message, before=before
        )
    return True


def _protect_order(
    account: BrokerAccount, order_id: int, actor: str, result: ProtectionResult
) -> None:
    """Reduce or cancel exits beyond the position (at the broker first), then write ahead and
    send the exits the filled quantity still lacks. Without reductions (the common case: an
    entry just filled) the plan and the new legs are one locked transaction."""
    with transaction.atomic():
        order, legs = _locked_legs(account, order_id)
        late = _late_fill(order, legs)
        plan = _order_exit_plan(order, legs, may_add=False)
        reduced_exits = bool(plan.reductions)
        new_legs = [] if reduced_exits or late else _write_new_exits(order, legs, actor)
    if late:
        squared = square_off_late_fill(account=account, order_id=order_id, actor=actor)
        result.placed += squared.exit_legs
        result.errors += squared.errors
        roll_up_orders(order_ids=[order_id], actor=actor, notify_all=True)
        return
    if reduced_exits:
        if not all([_apply_reduction(order, r, actor, result) for r in plan.reductions]):
            roll_up_orders(order_ids=[order_id], actor=actor)
            return
        with transaction.atomic():
            order, legs = _locked_legs(account, order_id)
            new_legs = _write_new_exits(order, legs, actor)
    if new_legs:
        outcomes = submit_legs(
            account=order.account, pairs=[(leg, order) for leg in new_legs], actor=actor
        )
        for outcome in outcomes:
            if outcome.accepted or not outcome.rejected_reason:
                result.placed.append(outcome.leg.unique_identifier)
            else:
                result.errors.append(
                    f"order {order.pk}: {outcome.leg.role} leg rejected: {outcome.rejected_reason}"
                )
    # A cancelled or reduced exit leg is a state change the owner hears about too.
    changed = roll_up_orders(
        order_ids=[order_id], actor=actor, notify_all=bool(new_legs) or reduced_exits
    )
    if changed:
        order.refresh_from_db(fields=["status"])
        if order.status == Order.Status.COMPLETED:
            result.completed_order_ids.append(order_id)


def _write_new_exits(order: Order, legs: list[OrderLeg], actor: str) -> list[OrderLeg]:
    """The exits the locked legs lack, written ahead with their audit rows (inside the
    caller's transaction; the account's daily counter exists: `_protect_each`)."""
    plan = _order_exit_plan(order, legs, may_add=_may_add(order, legs))
    if not plan.new_exits or plan.reductions:
        return []
    if exit_refused(order, legs):
        # Its exit was refused (`_may_add`): protected again, and no longer exit-requested.
        clear_exit_requested(
            orders=[order],
            actor=actor,
            kind=EventKind.EXIT_REFUSED,
            messages={
                order.pk: "the exit asked for was refused and nothing else closes the "
                "position: its stop-loss and targets are placed again"
            },
        )
    identifiers = next_unique_identifiers(account_id=order.account_id, count=len(plan.new_exits))
    new_legs = [
        _exit_leg(order, spec, identifier)
        for spec, identifier in zip(plan.new_exits, identifiers, strict=True)
    ]
    insert_rows(OrderLeg, new_legs)
    record_changes(
        [
            leg_change(
                order,
                leg,
                kind=EventKind.EXIT_CREATED,
                actor=actor,
                message=f"{leg.role} {leg.side} {leg.quantity} written ahead to cover "
                f"the open position of {plan.position}"
                + (
                    f", less the {plan.shortfall} the broker does not hold"
                    if plan.shortfall
                    else ""
                )
                + (f", less the {plan.exiting} its exits working take" if plan.exiting else ""),
            )
            for leg in new_legs
        ]
    )
    return new_legs


def brackets_to_protect(account_ids: list[int]) -> dict[int, list[int]]:
    """The brackets step 4 may have to act on, by account, in one read for every account:
    filled or partly filled, or completed with an exit still working (for one order in
    memory: `is_bracket_to_protect`). (Those with nothing to do are told apart later,
    without locks: `_orders_needing_protection`.)"""
    return brackets_to_protect_and_short(account_ids)[0]


def brackets_to_protect_and_short(account_ids: list[int]) -> tuple[dict[int, list[int]], set[int]]:
    """`brackets_to_protect`, and the accounts of those with a shortfall recorded
    (`Order.broker_shortfall`), from the same read: the monitoring cycle measures those
    accounts' brackets again against the positions it read
    (orders.services.position_changes.lower_shortfalls), the others cost it nothing."""
    by_account: dict[int, list[int]] = {}
    short: set[int] = set()
    for account_id, order_id, shortfall in _BRACKETS_TO_PROTECT(account_ids=account_ids):
        by_account.setdefault(account_id, []).append(order_id)
        if shortfall:
            short.add(account_id)
    return by_account, short


class _AccountOrder(NamedTuple):
    account_id: int
    id: int
    broker_shortfall: int


def _brackets_to_protect_query(*, account_ids: list[int]) -> QuerySet[Order, tuple[int, int, int]]:
    open_exit = Q(
        legs__role__in=EXIT_ROLES,
        legs__status__in=[LegStatus.OPEN, LegStatus.PARTIALLY_FILLED],
    )
    brackets = Order.objects.filter(
        account_id__in=account_ids, kind=Order.Kind.BRACKET, archived_at=None
    )
    return (
        brackets.filter(
            Q(status__in=[Order.Status.PARTIALLY_FILLED, Order.Status.FILLED])
            | (Q(status=Order.Status.COMPLETED) & open_exit)
        )
        .values_list("account_id", "pk", "broker_shortfall")
        .distinct()
        .order_by("pk")
    )


# Read by every cycle: compiled once.
_BRACKETS_TO_PROTECT = PreparedRows(_AccountOrder, _brackets_to_protect_query)


def is_bracket_to_protect(order: Order, legs: list[OrderLeg]) -> bool:
    """`brackets_to_protect`'s condition for one order read with all its legs: a bracket,
    not archived, filled or partly filled, or completed with an exit still working."""
    if order.kind != Order.Kind.BRACKET or order.archived_at is not None:
        return False
    if order.status in (Order.Status.PARTIALLY_FILLED, Order.Status.FILLED):
        return True
    return order.status == Order.Status.COMPLETED and any(
        leg.role in EXIT_ROLES and leg.status in (LegStatus.OPEN, LegStatus.PARTIALLY_FILLED)
        for leg in legs
    )


def _brackets_to_protect(account_id: int) -> list[int]:
    return brackets_to_protect([account_id]).get(account_id, [])


def _needs_protection(order: Order, legs: list[OrderLeg]) -> bool:
    """Whether `_protect_order` would change anything, judged from a read without locks:
    an exit to reduce or cancel, a new exit to place, or a status to roll up. The steady
    state of a protected bracket is none of these, and costs no per-order queries."""
    if _late_fill(order, legs):
        return True
    if _order_exit_plan(order, legs, may_add=False).reductions:
        return True
    if _order_exit_plan(order, legs, may_add=_may_add(order, legs)).new_exits:
        return True
    status, filled = derive_order_status(kind=order.kind, current=order.status, legs=legs)
    return (status, filled) != (order.status, order.filled_quantity)


def _orders_needing_protection(order_ids: list[int]) -> list[int]:
    """The orders of `order_ids` that need `_protect_order`: two queries for all of them."""
    if not order_ids:
        return []
    needing = {
        order.pk for order, legs in orders_with_legs(order_ids) if _needs_protection(order, legs)
    }
    return [order_id for order_id in order_ids if order_id in needing]


def _protect_each(account: BrokerAccount, needing: list[int], actor: str) -> ProtectionResult:
    """`_protect_order` for each of `needing` (the account's orders judged to need it from a
    read without locks: each is locked and read again before anything is done)."""
    result = ProtectionResult()
    if needing:
        # Before any transaction that takes numbers (orders.services.identifiers).
        ensure_daily_counter(account_id=account.pk)
    for order_id in needing:
        try:
            _protect_order(account, order_id, actor, result)
        except Exception as exc:
            logger.exception("protecting order failed", extra={"order_id": order_id})
            result.errors.append(f"order {order_id}: {type(exc).__name__}: {exc}")
    return result


def place_protective_legs(
    *,
    account: BrokerAccount,
    actor: str = MONITORING_ACTOR,
    candidates: list[int] | None = None,
) -> ProtectionResult:
    """Step 4 for one account (see the module docstring), under the account's exclusion.
    `candidates`: the account's share of a `brackets_to_protect` read the caller made under
    the exclusion (the monitoring cycle holds it from step 1): none, nothing to do.
    Raises ProtectiveLegsIncomplete after trying every bracket when any broker call failed."""
    if candidates is not None and not candidates:
        return ProtectionResult()
    with account_exclusion(account.pk, purpose="protection"):
        if candidates is None:
            candidates = _brackets_to_protect(account.pk)
        result = _protect_each(account, _orders_needing_protection(candidates), actor)
    if result.errors:
        raise ProtectiveLegsIncomplete("; ".join(result.errors))
    return result


def protect_orders(
    *,
    account: BrokerAccount,
    orders: list[tuple[Order, list[OrderLeg]]],
    actor: str = MONITORING_ACTOR,
) -> ProtectionResult:
    """Step 4 for some orders only (those a broker event just changed, with all their legs
    as it left them: `orders.services.events.EventEffect.orders`), under the account's
    exclusion: protective legs for newly filled quantity, one-cancels-other, completion.
    Orders that are not brackets needing it (`is_bracket_to_protect`) are left alone.
    Errors are returned (and audited by the broker calls), not raised: the next cycle
    tries again."""
    needing = [
        order.pk
        for order, legs in orders
        if order.account_id == account.pk
        and is_bracket_to_protect(order, legs)
        and _needs_protection(order, legs)
    ]
    with account_exclusion(account.pk, purpose="protection"):
        return _protect_each(account, needing, actor)


def protect_again(
    account: BrokerAccount,
    order_ids: list[int],
    *,
    placed_again: set[int],
    actor: str,
    result: ExitReport,
    caveat: str = "",
) -> None:
    """Step 4 at once (`protect_orders`) for brackets whose position an exit left alone, no
    longer exit-requested (or exit-requested before, and refused in part): what a square-off
    or a position change's cancels took from their stop-loss and targets (`placed_again`:
    the orders some of them were cancelled of) is placed again now. Each is named in
    `result`: protected (its stop-loss and targets kept, or placed again), or not when its
    stop-loss could not be placed (the broker's refusal is in `result.errors`). `caveat` is
    added to the words of those placed again (what they were sized by, when not by the
    broker's position)."""
    if not order_ids:
        return
    result.errors += protect_orders(
        account=account, orders=orders_with_legs(order_ids), actor=actor
    ).errors
    for order, legs in orders_with_legs(order_ids):
        if lacks_stop_loss(order, legs):
            result.unprotected_order_ids.append(order.pk)
            result.unprotected.append(
                f"{order_named(order)}: its stop-loss could not be placed again"
            )
        else:
            result.protected_order_ids.append(order.pk)
            result.protected.append(
                f"{order_named(order)}: stop-loss and targets "
                + ("placed again" + caveat if order.pk in placed_again else "kept")
            )


def order_named(order: Order) -> str:
    """An order as a report names it: "RELIANCE (order 12)"."""
    return f"{order.symbol} (order {order.pk})"


def protect_refused_exits(
    account: BrokerAccount,
    refused: dict[int, str],
    *,
    who: str,
    kind: EventKind,
    actor: str,
    result: ExitReport,
) -> None:
    """Step 4 at once for the exit-requested brackets named in `refused` (by order id: what
    of their exit was refused, in part or in full) by `who` (the kill switch, a position
    exit or change): they stay exit-requested, and their stop-loss and targets are placed
    now for what no exit working takes (`exiting_quantity`: the rejected slices' quantity,
    not what the slices on their way close too; all of what is left once those are refused
    as well). Each is audited (`kind`) and named in `result`: protected, or not when its
    stop-loss could not be placed."""
    if not refused:
        return
    ids = list(refused)
    read = orders_with_legs(ids)
    record_changes(
        [
            new_event(
                order=order,
                kind=kind,
                actor=actor,
                message=f"{who}: {refused[order.pk]}; its stop-loss and targets are "
                "placed at once for what its exits working do not close",
            )
            for order, _legs in read
        ]
    )
    result.errors += protect_orders(account=account, orders=read, actor=actor).errors
    for order, legs in orders_with_legs(ids):
        left = uncovered_quantity(order, legs)
        if lacks_stop_loss(order, legs):
            result.unprotected_order_ids.append(order.pk)
            result.unprotected.append(
                f"{order_named(order)}: {refused[order.pk]}, and no stop-loss could be placed "
                f"for the {left} its exits do not close"
            )
        else:
            result.protected_order_ids.append(order.pk)
            result.protected.append(
                f"{order_named(order)}: {refused[order.pk]}; stop-loss and targets cover the "
                f"{left} its exits do not close"
            )
