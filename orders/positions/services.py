"""Exiting positions: one (account, instrument, product), or all of an account's, with MARKET
orders for the net quantity through the normal write-ahead path (split at the freeze
quantity, as the kill switch does), every step audited.

Unlike the kill switch, an exit leaves the account's other working orders alone, except the
brackets holding the position: their stop-loss, targets and any unfilled entry are cancelled
first (else a stop-loss left working would open the opposite position later), and they are
marked exit-requested so the monitoring loop puts nothing back. If one of those legs cannot
be cancelled, that position is not exited (its protection still stands); the trader sees why.

Guards against double exits (a double click, two tabs): one change of the account at a time
(the account's exclusion, orders.services.exclusion, which the kill switch, the monitoring
cycle and the broker-event handler take too), the legs refreshed from the broker's order book
and the quantity read live from the broker rather than the last sync, and a position with an
exit leg still working is refused until that leg settles.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from asgiref.sync import async_to_sync
from django.db import transaction

from accounts.models import BrokerAccount
from accounts.services import strategy_named
from orders.brokers.base import BrokerError
from orders.domain.vocabulary import OPEN_LEG_STATUSES, EventKind
from orders.models import Order, OrderLeg
from orders.services.audit import record_account_event
from orders.services.broker_calls import client_for
from orders.services.changes import cancel_working_legs
from orders.services.exclusion import account_exclusion
from orders.services.position_changes import (
    ExitReport,
    PositionKey,
    mark_exit_requested,
    position_key,
    resume_protection,
    send_exits,
    write_ahead_exits,
)
from orders.services.resync import refresh_legs_from_broker
from orders.services.sync import LIVE_ORDER_STATUSES, roll_up_orders

logger = logging.getLogger("orders.services")

EXTERNAL_ID = "position-exit"


@dataclass
class ExitResult(ExitReport):
    exited: list[PositionKey] = field(default_factory=list)
    # The brackets given exit legs of their own, and the exits never sent (not sent: the
    # same exit asked again sends them).
    bracket_order_ids: list[int] = field(default_factory=list)
    not_sent: list[str] = field(default_factory=list)


def _describe(key: PositionKey) -> str:
    return f"{key[0]}:{key[1]} {key[2]}"


def _holding_brackets(account: BrokerAccount, keys: set[PositionKey] | None) -> list[Order]:
    brackets = Order.objects.select_for_update().filter(
        account=account, kind=Order.Kind.BRACKET, status__in=LIVE_ORDER_STATUSES
    )
    return [
        order
        for order in brackets
        if keys is None
        or (order.exchange_segment, order.exchange_instrument_id, order.product_type) in keys
    ]


def _working_exit_keys(account: BrokerAccount) -> set[tuple[str, int]]:
    """Instruments with an EXIT leg still working at the broker (or not yet answered)."""
    rows = OrderLeg.objects.filter(
        account=account, role=OrderLeg.Role.EXIT, status__in=OPEN_LEG_STATUSES
    ).values_list("order__exchange_segment", "order__exchange_instrument_id")
    return {(segment, int(instrument_id)) for segment, instrument_id in rows}


@dataclass(frozen=True)
class ExitOrders:
    """Who the exit's new orders are for: the desk's trader by default; OpenAlgo's
    closeposition credits its strategy (orders.openalgo.services), made on first use once
    there is a position to exit."""

    source: str = Order.Source.MANUAL
    external_id: str = EXTERNAL_ID
    strategy_name: str = ""


def exit_positions(
    *,
    account: BrokerAccount,
    actor: str,
    keys: set[PositionKey] | None = None,
    orders: ExitOrders | None = None,
) -> ExitResult:
    """Square off the account's positions named by `keys` (all of them when None), under
    the account's exclusion (AccountBusy, a Conflict, when another change of the account
    does not finish in time): a second exit waits for the first, then finds its exit leg
    working (or the position flat) and sends nothing. Exits close positions, so the kill
    switch's trading lock does not refuse them."""
    with account_exclusion(account.pk, purpose="position exit"):
        return _exit(account=account, actor=actor, keys=keys, orders=orders or ExitOrders())


def _exit(
    *, account: BrokerAccount, actor: str, keys: set[PositionKey] | None, orders: ExitOrders
) -> ExitResult:
    result = ExitResult()
    what = "every position" if keys is None else ", ".join(_describe(k) for k in sorted(keys))
    record_account_event(
        account,
        actor=actor,
        kind=EventKind.POSITIONS_EXIT_REQUESTED,
        message=f"exit requested: {what}",
    )

    # 1. The brackets holding these positions: marked, then (on the broker's order book as it
    # is now: a stop-loss that just filled is not cancelled) their working legs cancelled.
    with transaction.atomic():
        brackets = _holding_brackets(account, keys)
        mark_exit_requested(
            orders=brackets,
            actor=actor,
            kind=EventKind.POSITION_EXIT,
            message="exit of the position: its open legs are cancelled first",
        )
    try:
        refresh_legs_from_broker(account=account, actor=actor)
    except BrokerError:
        # Acting on the last known leg states is safe here: a leg that already settled
        # refuses its cancel below and holds its position back, with the reason shown.
        logger.warning("position exit: order book unreadable", extra={"account_id": account.pk})
    blocked: set[tuple[str, int, str]] = set()
    working = OrderLeg.objects.filter(
        order__in=brackets, status__in=OPEN_LEG_STATUSES
    ).select_related("order", "order__account")
    attempts = cancel_working_legs(
        working.order_by("id"),
        actor=actor,
        kind=EventKind.POSITION_EXIT_CANCEL,
        failed_kind=EventKind.POSITION_EXIT_CANCEL_FAILED,
    )
    for attempt in attempts:
        leg, order = attempt.leg, attempt.leg.order
        if attempt.cancelled:
            result.cancelled_legs.append(leg.unique_identifier)
            continue
        blocked.add((order.exchange_segment, order.exchange_instrument_id, order.product_type))
        if attempt.error is None:
            result.errors.append(
                f"{order.symbol}: leg {leg.unique_identifier} is not acknowledged by the broker "
                "yet, so it cannot be cancelled; nothing was sent for this position (try again "
                "after the next sync)"
            )
        else:
            result.errors.append(
                f"{order.symbol}: could not cancel leg {leg.unique_identifier} "
                f"({attempt.error.message}); nothing was sent for this position, its protection "
                "stands"
            )

    # 2. The positions as the broker holds them now.
    try:
        positions = async_to_sync(client_for(account).positions)()
    except BrokerError as exc:
        result.errors.append(f"positions unavailable, nothing sent: {exc.message}")
        record_account_event(
            account, actor=actor, kind=EventKind.POSITIONS_EXIT_FAILED, message=result.errors[-1]
        )
        resume_protection(
            marked=brackets, on_their_way=[], actor=actor, kind=EventKind.POSITIONS_EXIT_FAILED
        )
        roll_up_orders(order_ids=[o.pk for o in brackets], actor=actor)
        return result
    busy = _working_exit_keys(account)
    chosen = []
    for position in positions:
        key = position_key(position)
        if keys is not None and key not in keys:
            continue
        if not position.net_qty:
            continue
        if key in blocked:
            continue
        if (key[0], key[1]) in busy:
            result.errors.append(
                f"{position.trading_symbol or _describe(key)}: an exit order is still working; "
                "nothing more was sent"
            )
            continue
        chosen.append(position)
        result.exited.append(key)
    if keys is not None:
        for key in sorted(keys - {position_key(p) for p in positions if p.net_qty}):
            result.errors.append(f"{_describe(key)}: the broker reports no open position")

    # 3. Written ahead, then sent (orders.services, as for every order).
    pairs = write_ahead_exits(
        account=account,
        positions=chosen,
        actor=actor,
        result=result,
        source=orders.source,
        external_id=orders.external_id,
        reason="position exit",
        strategy=(
            strategy_named(user=account.user, name=orders.strategy_name)
            if orders.strategy_name and chosen
            else None
        ),
    )
    result.bracket_order_ids = sorted(
        {o.pk for _, o in pairs if o.kind == Order.Kind.BRACKET} - set(result.exit_order_ids)
    )
    outcomes = send_exits(account=account, pairs=pairs, actor=actor, result=result)
    for outcome in outcomes:
        if outcome.not_sent:
            result.not_sent.append(outcome.leg.unique_identifier)
    resume_protection(
        marked=brackets,
        on_their_way=[
            order.pk
            for outcome, (_leg, order) in zip(outcomes, pairs, strict=True)
            if not outcome.rejected_reason
        ],
        actor=actor,
        kind=EventKind.POSITIONS_EXIT_FAILED,
    )
    roll_up_orders(
        order_ids=sorted({o.pk for o in brackets} | {o.pk for _, o in pairs}), actor=actor
    )
    record_account_event(
        account,
        actor=actor,
        kind=(
            EventKind.POSITIONS_EXIT_SENT
            if result.complete
            else EventKind.POSITIONS_EXIT_INCOMPLETE
        ),
        message=f"{len(result.exit_legs)} exit order(s) sent"
        + (f"; problems: {'; '.join(result.errors)}" if result.errors else ""),
    )
    return result
