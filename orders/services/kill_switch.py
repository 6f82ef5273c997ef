"""The kill switch: lock the account's trading, cancel every working leg and square off
every position with MARKET exits, all audited. Broker calls happen outside any transaction,
as in changes. The lock comes first (orders.services.trading_lock): no new order gets in
while the rest runs, and none after it until the trader re-enables trading.

It never leaves a filled bracket without its stop-loss: the cancels and exits go in the
order that a trader's position exit shares (orders.services.square_off). Every leg but the
brackets' stop-loss and targets is cancelled first; those only once the broker's positions
can be read; MARKET exits for every position but one a leg still working could close too;
a bracket whose position was not squared off is unmarked and protected again at once, and
the answer names it: one an earlier run left exit-requested too (its exit refused in part)
when this run cancelled its stop-loss or targets, so that a kill switch that cannot square
off leaves no position less protected than it found it. An entry it could not cancel that
fills later is squared off at once (orders.services.late_fills).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from accounts.models import BrokerAccount
from orders.brokers.base import BrokerError
from orders.domain.vocabulary import OPEN_LEG_STATUSES, EventKind
from orders.models import Order, OrderLeg, Side
from orders.services.audit import record_account_event
from orders.services.exclusion import account_exclusion
from orders.services.position_changes import ExitReport, mark_exit_requested
from orders.services.resync import refresh_legs_from_broker
from orders.services.square_off import SquareOffTerms, square_off
from orders.services.sync import LIVE_ORDER_STATUSES, roll_up_orders
from orders.services.trading_lock import lock_trading

TERMS = SquareOffTerms(
    who="kill switch",
    cancel_kind=EventKind.KILL_SWITCH_CANCEL,
    cancel_failed_kind=EventKind.KILL_SWITCH_CANCEL_FAILED,
    kept_kind=EventKind.KILL_SWITCH_PROTECTION_KEPT,
    source=Order.Source.KILL_SWITCH,
    external_id="kill-switch",
)


@dataclass
class KillSwitchResult(ExitReport):
    # The orders whose working legs were cancelled, and one phrase per position squared
    # off ("RELIANCE 10 sold at market"). The brackets not squared off, protected or not,
    # are ExitReport's.
    cancelled_order_ids: list[int] = field(default_factory=list)
    squared_off: list[str] = field(default_factory=list)
    trading_locked: bool = True

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
        for words in self.words:
            text += " " + words
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
    done = square_off(
        account=account,
        actor=actor,
        # As read before the mark: those this kill switch marked have none.
        brackets=[o for o in live if o.kind == Order.Kind.BRACKET],
        working=working,
        terms=TERMS,
        result=result,
    )
    result.cancelled_order_ids = list(dict.fromkeys(leg.order_id for leg in done.cancelled))
    sent: dict[tuple[str, str], int] = {}
    for outcome, (_leg, order) in zip(done.outcomes, done.pairs, strict=True):
        if not outcome.rejected_reason:
            symbol_side = (order.symbol, outcome.leg.side)
            sent[symbol_side] = sent.get(symbol_side, 0) + outcome.leg.quantity
    result.squared_off = [
        f"{symbol} {quantity} {'sold' if side == Side.SELL else 'bought'} at market"
        for (symbol, side), quantity in sent.items()
    ]
    roll_up_orders(
        order_ids=sorted({o.pk for o in live} | {o.pk for _, o in done.pairs}), actor=actor
    )
    return result
