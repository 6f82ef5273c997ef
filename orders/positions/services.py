"""Exiting positions: one (account, instrument, product), or all of an account's, with MARKET
orders for the net quantity through the normal write-ahead path (split at the freeze quantity,
as the kill switch does), every step audited.

Unlike the kill switch, an exit leaves the account's other working orders alone, except the
brackets holding the position: they are marked exit-requested (the monitoring loop puts
nothing back), and their working legs cancelled in the kill switch's order
(orders.services.square_off): any unfilled entry first (else a stop-loss left working would
open the opposite position later), the stop-loss and targets only once the broker's
positions can be read. A position one of their legs could still close (a cancel refused or
not yet possible) is not exited; a bracket whose position was not exited keeps its
stop-loss and targets, or gets them back at once, and the answer names it. An entry that
could not be cancelled and fills later is squared off at once (orders.services.late_fills).

Guards against double exits (a double click, two tabs): one change of the account at a time
(the account's exclusion, orders.services.exclusion, which the kill switch, the monitoring
cycle and the broker-event handler take too), the legs refreshed from the broker's order book
and the quantity read live from the broker rather than the last sync, and a position with an
exit leg still working is refused until that leg settles.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

from django.db import transaction

from accounts.models import BrokerAccount
from orders.brokers.base import BrokerError, BrokerPositionRow
from orders.domain.vocabulary import OPEN_LEG_STATUSES, EventKind
from orders.models import Order, OrderLeg
from orders.services.audit import record_account_event
from orders.services.exclusion import account_exclusion
from orders.services.position_changes import (
    ExitReport,
    PositionKey,
    mark_exit_requested,
    position_key,
)
from orders.services.resync import refresh_legs_from_broker
from orders.services.square_off import SquareOffTerms, square_off
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

    # The brackets holding these positions, marked; then (on the broker's order book as it
    # is now: a stop-loss that just filled is not cancelled) their working legs cancelled
    # and the positions squared off, in the kill switch's order.
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
        # refuses its cancel and holds its position back, with the reason shown.
        logger.warning("position exit: order book unreadable", extra={"account_id": account.pk})
    working = OrderLeg.objects.filter(
        order__in=brackets, status__in=OPEN_LEG_STATUSES
    ).select_related("order", "order__account")

    done = square_off(
        account=account,
        actor=actor,
        brackets=brackets,
        working=list(working.order_by("id")),
        terms=SquareOffTerms(
            who="position exit",
            cancel_kind=EventKind.POSITION_EXIT_CANCEL,
            cancel_failed_kind=EventKind.POSITION_EXIT_CANCEL_FAILED,
            kept_kind=EventKind.POSITION_EXIT_PROTECTION_KEPT,
            source=orders.source,
            external_id=orders.external_id,
            strategy_name=orders.strategy_name,
        ),
        result=result,
        choose=partial(_chosen, account, keys=keys, result=result),
    )
    result.exited = [position_key(p) for p in done.chosen]
    result.bracket_order_ids = sorted(
        {o.pk for _, o in done.pairs if o.kind == Order.Kind.BRACKET} - set(result.exit_order_ids)
    )
    result.not_sent = [
        outcome.leg.unique_identifier for outcome in done.outcomes if outcome.not_sent
    ]
    roll_up_orders(
        order_ids=sorted({o.pk for o in brackets} | {o.pk for _, o in done.pairs}), actor=actor
    )
    if keys is not None and done.positions is not None:
        held = {position_key(p) for p in done.positions if p.net_qty}
        for key in sorted(keys - held):
            result.errors.append(f"{_describe(key)}: the broker reports no open position")
    if done.positions is None:
        kind = EventKind.POSITIONS_EXIT_FAILED
        message = "; ".join(result.errors)
    else:
        kind = (
            EventKind.POSITIONS_EXIT_SENT
            if result.complete
            else EventKind.POSITIONS_EXIT_INCOMPLETE
        )
        message = f"{len(result.exit_legs)} exit order(s) sent" + (
            f"; problems: {'; '.join(result.errors)}" if result.errors else ""
        )
    record_account_event(account, actor=actor, kind=kind, message=message)
    return result


def _chosen(
    account: BrokerAccount,
    positions: list[BrokerPositionRow],
    /,
    *,
    keys: set[PositionKey] | None,
    result: ExitResult,
) -> tuple[list[BrokerPositionRow], dict[PositionKey, str]]:
    """The positions to exit among `positions` (none held back): those of `keys` (every one
    when None) the broker holds, but one with an exit leg still working (left alone, with
    why)."""
    busy = _working_exit_keys(account)
    chosen = []
    skipped: dict[PositionKey, str] = {}
    for position in positions:
        key = position_key(position)
        if (keys is not None and key not in keys) or not position.net_qty:
            continue
        if (key[0], key[1]) in busy:
            skipped[key] = "an exit order is still working"
            result.errors.append(
                f"{position.trading_symbol or _describe(key)}: an exit order is still working; "
                "nothing more was sent"
            )
            continue
        chosen.append(position)
    return chosen, skipped
