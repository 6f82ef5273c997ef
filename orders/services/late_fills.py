"""A bracket's entry that fills after its exit was asked for: the fill is squared off at once.

The kill switch and a trader's position exit (orders.services.square_off) cancel a bracket's
entry before they square its position off. An entry they could not cancel (the broker had not
acknowledged it yet, or refused the cancel) keeps working, and the bracket stays
exit-requested, so step 4 places no stop-loss for what it fills next. A trader who pressed
"kill" or "exit" wants out: step 4 (on the broker event that reports the fill, or at the next
cycle) cancels what of the entry still works and squares the fill off with a MARKET exit leg
on the bracket, audited (late_fill).

What is late: the entry's fills beyond what the exit covers (`Order.exit_requested_entry_filled`,
noted when the exit was measured from the broker's positions) that no leg is closing yet
(`late_fill_quantity`, arithmetic on the legs). What is sent: never more than the broker's
live position holds beyond the exits working for it, so a fill the exits closed already (the
broker reported it before the desk learned of it) or a position closed at the broker is
never sold twice. A late fill is an exit asked anew (the mark moves to now): should the
broker refuse its exit, step 4 protects the bracket again (protection.exit_refused).

While the broker's position cannot be read, nothing is sent and every event or cycle tries
again; the late fill is recorded waiting once (a late_fill event whose `after` names it: the
late quantity and the entry's fills), and again only when that changes (the entry filled
more meanwhile), not at every try.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from accounts.models import BrokerAccount
from orders.brokers.base import BrokerPositionRow
from orders.domain.rollup import open_position_of
from orders.domain.vocabulary import OPEN_LEG_STATUSES, EventKind, LegStatus
from orders.models import Order, OrderLeg, Side
from orders.selectors import latest_event_after, locked_order_with_legs, orders_with_legs
from orders.services.audit import new_event, record_changes
from orders.services.broker_calls import submit_legs
from orders.services.broker_reads import read_positions
from orders.services.changes import try_cancel_leg
from orders.services.exclusion import fence
from orders.services.position_changes import (
    BracketExit,
    entry_filled,
    exit_side_of,
    order_position_key,
    position_key,
    working_quantity,
    write_ahead_bracket_exits,
)
from trading_site.core.errors import BrokerUnavailableError

Role = OrderLeg.Role


def late_fill_quantity(order: Order, legs: list[OrderLeg]) -> int:
    """What the exit-requested order's entry filled beyond what its exit covers, that no
    leg is closing yet (an exit working, or a stop-loss or target the exit could not
    cancel): 0 for an order not exit-requested."""
    covered = order.exit_requested_entry_filled
    if order.exit_requested_at is None or covered is None:
        return 0
    late = entry_filled(legs) - covered
    if late <= 0:
        return 0
    closing = working_quantity(legs) + max(
        working_quantity(legs, Role.STOP_LOSS), working_quantity(legs, Role.TAKE_PROFIT)
    )
    return max(0, min(late, open_position_of(legs) - closing))


@dataclass
class LateFillResult:
    """The exit legs sent for a late fill (or still unanswered) and every problem."""

    exit_legs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def square_off_late_fill(*, account: BrokerAccount, order_id: int, actor: str) -> LateFillResult:
    """Cancel what of the exit-requested bracket's entry still works, then square off what it
    filled late (`late_fill_quantity`) with a MARKET exit leg, measured against the broker's
    live position (the module docstring says why). The caller holds the account's exclusion
    and has the day's counter row (protection's step 4). Nothing is sent while the broker's
    positions cannot be read: the next event or cycle tries again."""
    result = LateFillResult()
    [(order, legs)] = orders_with_legs([order_id])
    order.account = account
    for leg in legs:
        if leg.role == Role.ENTRY and leg.status in (LegStatus.OPEN, LegStatus.PARTIALLY_FILLED):
            attempt = try_cancel_leg(
                order=order,
                leg=leg,
                actor=actor,
                kind=EventKind.LEG_CANCELLED,
                failed_kind=EventKind.LEG_CANCELLED_FAILED,
            )
            if attempt.error is not None:
                result.errors.append(
                    f"order {order.pk}: its entry {leg.unique_identifier}, filling after the "
                    f"exit was asked for, could not be cancelled: {attempt.error.message}"
                )
    try:
        positions = read_positions(account)
    except BrokerUnavailableError as exc:
        positions, reason = None, exc.message
    with transaction.atomic():
        order, legs = locked_order_with_legs(order_id)
        order.account = account
        fence(account.pk)
        late = late_fill_quantity(order, legs)
        if not late:
            return result
        held = _held_beyond_exits(order, positions) if positions is not None else None
        if held is None:
            problem = (
                f"order {order.pk}: its entry filled {late} more after the exit was asked for, "
                "not squared off yet: "
                + (reason if positions is None else "the broker's position is unreadable")
                + " (tried again at the next broker event or cycle)"
            )
            _record_waiting(order, legs, late=late, actor=actor, message=problem)
            result.errors.append(problem)
            return result
        pairs = _square_off(order, legs, late=late, held=held, actor=actor)
    for outcome in submit_legs(account=account, pairs=pairs, actor=actor):
        if outcome.rejected_reason:
            result.errors.append(
                f"order {order.pk}: the exit of its late fill was rejected: "
                f"{outcome.rejected_reason}"
            )
        else:
            result.exit_legs.append(outcome.leg.unique_identifier)
    return result


def _record_waiting(
    order: Order, legs: list[OrderLeg], *, late: int, actor: str, message: str
) -> None:
    """The late fill audited as waiting for the broker's position, unless the trail says so
    already for this very late fill since the exit was asked for (the order is locked: two
    tries never both write it)."""
    assert order.exit_requested_at is not None  # a late fill is of an exit-requested order
    waiting = {"waiting": late, "entry_filled": entry_filled(legs)}
    recorded = latest_event_after(
        order=order, kind=EventKind.LATE_FILL, since=order.exit_requested_at
    )
    if recorded == waiting:
        return
    record_changes(
        [
            new_event(
                order=order, kind=EventKind.LATE_FILL, actor=actor, message=message, after=waiting
            )
        ]
    )


def _square_off(
    order: Order, legs: list[OrderLeg], *, late: int, held: int, actor: str
) -> list[tuple[OrderLeg, Order]]:
    """Inside the caller's transaction, the order locked: the late fill asked to exit anew
    (the exit now covers the entry's fills), its MARKET exit leg written ahead (at most
    `held`, what the broker holds beyond the exits working), audited."""
    now = timezone.now()
    covers = entry_filled(legs)
    Order.objects.filter(pk=order.pk).update(
        exit_requested_at=now, exit_requested_entry_filled=covers, updated_at=now
    )
    order.exit_requested_at, order.exit_requested_entry_filled = now, covers
    quantity = min(late, held)
    what = f"its entry filled {late} more after the exit was asked for: "
    if quantity == late:
        message = what + f"squared off at once with a MARKET exit of {quantity}"
    elif quantity:
        message = what + (
            f"{quantity} squared off at once, the broker's position holding no more of it "
            "beyond the exits working"
        )
    else:
        message = what + (
            "nothing to square off, the broker's position holds none of it beyond the exits "
            "working (closed already)"
        )
    record_changes([new_event(order=order, kind=EventKind.LATE_FILL, actor=actor, message=message)])
    if not quantity:
        return []
    return write_ahead_bracket_exits(
        [BracketExit(order=order, legs=legs, quantity=quantity, closes_all=False)],
        account=order.account,
        exit_side=exit_side_of(order),
        actor=actor,
        reason="late fill",
    )


def _held_beyond_exits(order: Order, positions: list[BrokerPositionRow]) -> int | None:
    """What the broker's position of the order's instrument and product holds on the
    order's side, beyond what the account's exit legs working on it will close; None when
    the broker sent that position's quantity unreadable."""
    key = order_position_key(order)
    rows = [row for row in positions if position_key(row) == key]
    if any(row.net_qty is None for row in rows):
        return None
    net = sum(row.net_qty or 0 for row in rows)
    held = net if order.side == Side.BUY else -net
    exits = OrderLeg.objects.filter(
        account_id=order.account_id,
        role=Role.EXIT,
        side=exit_side_of(order),
        status__in=OPEN_LEG_STATUSES,
        order__exchange_segment=key[0],
        order__exchange_instrument_id=key[1],
        order__product_type=key[2],
    )
    return max(0, held - working_quantity(exits))
