"""Changing a position by an amount or to a target, and exiting positions, without leaving
a bracket's protection behind: the one place that decides which part of an exit the
brackets holding a position take.

A position on the desk may be held by brackets, whose stop-loss and targets keep working at
the broker. A plain opposite order would flatten the position but leave those legs working:
one of them fills later and opens the position again the other way, unprotected. So the
part of a change that reduces a position is given first to the brackets holding it
(`brackets_holding`, `allocate_to_brackets`: oldest first), as MARKET exit legs on those
brackets (`write_ahead_bracket_exits`); their stop-loss and targets then shrink with the
exit (protection's one-cancels-other). The rest is an order of its own.

Three callers share this:
- `write_ahead_exits`: whole positions squared off with MARKET exits, the rest as new orders
  whose one leg is an EXIT (not refused by the kill switch's trading lock): the kill switch
  and a trader's position exit (orders.positions.services, also OpenAlgo's closeposition).
- `change_position`: a change by an amount (OpenAlgo's placesmartorder, its strategy
  webhook), a bracket exited in full has its working legs cancelled first and is marked
  exit-requested (protected again at once when a cancel failed and its exit is held back,
  and for what an exit the broker refused, in full or in part, leaves open); the rest is
  one single order through the one placement path (validation, write-ahead, idempotency),
  refused on a locked account.
- `change_position_live`: the live position read and changed under the account's exclusion.

The broker's positions are read live (`net_quantity`): a target is only as good as the
position it is measured from. The brackets are measured against them too
(`measure_shortfalls`, `record_shortfalls`): what of a bracket the broker does not hold (a
trade in its own terminal, its risk system) is neither exited nor protected, audited and
told to the trader; a change trims such a bracket's working stop-loss and targets to what
the broker holds before its exit goes out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, OuterRef, QuerySet, Subquery, Sum
from django.utils import timezone

from accounts.models import BrokerAccount, Strategy, User
from accounts.services import strategy_named
from orders.brokers.base import BrokerPositionRow
from orders.domain.exit_sizing import (
    broker_shortfalls,
    held_toward,
    lowered_shortfall,
    protectable,
    read_is_current,
)
from orders.domain.rollup import open_position_of
from orders.domain.vocabulary import OPEN_LEG_STATUSES, EventKind
from orders.models import Instrument, Order, OrderLeg, OrderType, Side
from orders.selectors import orders_with_legs
from orders.services.audit import leg_change, new_event, record_changes
from orders.services.broker_calls import SendOutcome, submit_legs
from orders.services.broker_reads import read_positions
from orders.services.changes import try_cancel_leg
from orders.services.exclusion import account_exclusion
from orders.services.identifiers import ensure_daily_counter, next_unique_identifiers
from orders.services.lifecycle import INITIAL_STATUS
from orders.services.placement import OrderPlan, PlacementResult, place_single_order, write_ahead
from orders.services.sync import roll_up_orders
from orders.services.trading_lock import ensure_trading_allowed_now
from orders.validation import SingleOrderRequest, check_trading_window, validate_single_order
from trading_site.core.errors import BrokerUnavailableError, ValidationFailed

Role = OrderLeg.Role

logger = logging.getLogger(__name__)


# ---- reading positions ----------------------------------------------------------------------

PositionKey = tuple[str, int, str]  # (exchange segment, exchange instrument id, product)


def position_key(position: BrokerPositionRow) -> PositionKey:
    """The position a broker's row is of."""
    return (position.exchange_segment, int(position.exchange_instrument_id), position.product_type)


def order_position_key(order: Order) -> PositionKey:
    """The position an order's fills go to."""
    return (order.exchange_segment, int(order.exchange_instrument_id), order.product_type)


def exit_side_of(order: Order) -> str:
    """The side that closes what the order's entry opened."""
    return Side.SELL if order.side == Side.BUY else Side.BUY


def net_quantity(
    *,
    instrument: Instrument,
    product_type: str,
    positions: list[BrokerPositionRow],
) -> int:
    """The net quantity of one instrument and product in `positions` (0 when flat). A
    quantity the broker sent unreadable is never guessed: BrokerUnavailableError."""
    total = 0
    for row in positions:
        if (
            row.exchange_segment != instrument.exchange_segment
            or int(row.exchange_instrument_id) != int(instrument.exchange_instrument_id)
            or row.product_type != product_type
        ):
            continue
        if row.net_qty is None:
            raise BrokerUnavailableError(
                "The broker sent this position's quantity unreadable; nothing was placed",
                details={"symbol": instrument.trading_symbol},
            )
        total += row.net_qty
    return total


# ---- the brackets holding a position, and their exit legs ----------------------------------


def chunks(quantity: int, freeze: int | None) -> list[int]:
    """`quantity` in orders of at most the exchange's freeze quantity."""
    if quantity <= 0:
        return []
    if not freeze or quantity <= freeze:
        return [quantity]
    full, rest = divmod(quantity, freeze)
    return [freeze] * full + ([rest] if rest else [])


def working_quantity(legs: Iterable[OrderLeg], role: str = Role.EXIT) -> int:
    """What the legs of `role` still working (or unanswered) may yet fill."""
    return sum(
        max(0, leg.quantity - leg.filled_quantity)
        for leg in legs
        if leg.role == role and leg.status in OPEN_LEG_STATUSES
    )


def entry_filled(legs: Iterable[OrderLeg]) -> int:
    """What the order's entry has filled."""
    return sum(leg.filled_quantity for leg in legs if leg.role == Role.ENTRY)


@dataclass
class BracketExit:
    """The part of an exit one bracket takes."""

    order: Order
    legs: list[OrderLeg]
    quantity: int
    closes_all: bool


def brackets_holding(
    *,
    account: BrokerAccount,
    instrument: Instrument,
    product_type: str,
    exit_side: str,
    shortfalls: dict[int, int] | None = None,
) -> list[tuple[Order, list[OrderLeg], int]]:
    """The brackets whose open position an order on `exit_side` would reduce, oldest
    first, each with its legs and the quantity still free to exit (what the broker holds of
    their open position, less the exits already on their way: `_free_to_exit`)."""
    holding_side = Side.BUY if exit_side == Side.SELL else Side.SELL
    brackets = _filled_brackets(account=account, instrument_ids=[instrument.pk]).filter(
        product_type=product_type, side=holding_side
    )
    return _free_to_exit(brackets, shortfalls)


def _filled_brackets(
    *, account: BrokerAccount, instrument_ids: Iterable[int] = (), **where: Any
) -> QuerySet[Order]:
    """The account's brackets holding a position, of the instruments named (by id, or by
    any other filter in `where`), oldest first, with their legs."""
    if not where:
        where = {"instrument_id__in": list(instrument_ids)}
    return (
        Order.objects.filter(
            account=account,
            kind=Order.Kind.BRACKET,
            filled_quantity__gt=0,
            status__in=(Order.Status.PARTIALLY_FILLED, Order.Status.FILLED),
            archived_at=None,
            **where,
        )
        .select_related("instrument")
        .prefetch_related("legs")
        .order_by("id")
    )


def _free_to_exit(
    brackets: Iterable[Order], shortfalls: dict[int, int] | None = None
) -> list[tuple[Order, list[OrderLeg], int]]:
    """The brackets with something free to exit: of their open position, what the broker
    holds (all but their shortfall: `shortfalls`, by order id, measured now, or the one
    last recorded) less the exits already on their way."""
    found = []
    for order in brackets:
        legs = list(order.legs.all())
        shortfall = (shortfalls or {}).get(order.pk, order.broker_shortfall)
        free = protectable(open_position_of(legs), shortfall) - working_quantity(legs)
        if free > 0:
            found.append((order, legs, free))
    return found


def _instruments_of(positions: list[BrokerPositionRow]) -> dict[tuple[str, int], Instrument]:
    """The positions' instruments (with their fair prices), in one query."""
    keys = {
        (p.exchange_segment, int(p.exchange_instrument_id))
        for p in positions
        if p.net_qty and p.exchange_instrument_id is not None
    }
    if not keys:
        return {}
    found = Instrument.objects.select_related("fair_price").filter(
        exchange_instrument_id__in={iid for _segment, iid in keys}
    )
    by_key: dict[tuple[str, int], Instrument] = {}
    for instrument in found.order_by("id"):
        key = (instrument.exchange_segment, instrument.exchange_instrument_id)
        if key in keys:
            by_key.setdefault(key, instrument)
    return by_key


# ---- what the broker holds of the brackets' positions -------------------------------------


@dataclass(frozen=True)
class Shortfall:
    """A bracket measured against the broker: its open position, the desk's brackets'
    in all in its position and direction (`desk`), what the broker holds of that (`broker`),
    and what of its own the broker does not hold (orders.domain.exit_sizing)."""

    order: Order
    position: int
    desk: int
    broker: int
    shortfall: int

    @property
    def covered(self) -> int:
        """What its exits, stop-loss and targets may cover."""
        return protectable(self.position, self.shortfall)

    @property
    def phrase(self) -> str:
        """For the trader: "RELIANCE (order 12): the desk held 10, the broker 4; ..."."""
        desk = f"{self.position}" + (
            f" ({self.desk} on its brackets)" if self.desk != self.position else ""
        )
        return (
            f"{self.order.symbol} (order {self.order.pk}): the desk held {desk}, the broker "
            f"{self.broker}; its exits, stop-loss and targets sized to {self.covered}"
        )


def measure_shortfalls(*, account: BrokerAccount, nets: dict[PositionKey, int]) -> list[Shortfall]:
    """Every bracket of the account holding one of the positions of `nets` (each with the
    broker's net quantity, read live: 0 when it holds none) measured against the broker.
    Reads only."""
    if not nets:
        return []
    found = _filled_brackets(account=account, exchange_instrument_id__in={key[1] for key in nets})
    groups: dict[tuple[PositionKey, str], list[tuple[Order, int]]] = {}
    for order in found:
        key = order_position_key(order)
        if key in nets:
            position = open_position_of(list(order.legs.all()))
            groups.setdefault((key, order.side), []).append((order, position))
    desk_of = {
        group: sum(max(0, position) for _o, position in holding)
        for group, holding in groups.items()
    }
    measured = []
    for (key, side), holding in groups.items():
        opposite = desk_of.get((key, Side.SELL if side == Side.BUY else Side.BUY), 0)
        broker = held_toward(nets[key], side, opposite)
        shortfalls = broker_shortfalls([(o.pk, position) for o, position in holding], broker)
        desk = desk_of[(key, side)]
        measured += [
            Shortfall(o, position=q, desk=desk, broker=broker, shortfall=shortfalls[o.pk])
            for o, q in holding
        ]
    return measured


def record_shortfalls(
    measured: list[Shortfall], *, who: str, actor: str, report: ExitReport
) -> None:
    """Each measured bracket's shortfall stored, audited (EXIT_SIZED_TO_BROKER: the desk
    held X, the broker Y, sized to Z) when the broker holds less of it or it changed, and
    named in `report` when the broker holds less of it."""
    changed = [m for m in measured if m.shortfall != m.order.broker_shortfall]
    told = [m for m in measured if m.shortfall or m in changed]
    if not told:
        return
    before = {m.order.pk: m.order.broker_shortfall for m in told}
    with transaction.atomic():
        for m in changed:
            Order.objects.filter(pk=m.order.pk).update(
                broker_shortfall=m.shortfall, updated_at=timezone.now()
            )
            m.order.broker_shortfall = m.shortfall
        record_changes(
            [
                new_event(
                    order=m.order,
                    kind=EventKind.EXIT_SIZED_TO_BROKER,
                    actor=actor,
                    message=f"{who}: the desk held {m.position} of this bracket's position "
                    f"({m.desk} on its brackets), the broker {m.broker}: its exits, stop-loss "
                    f"and targets cover at most {m.covered}",
                    before={"broker_shortfall": before[m.order.pk]},
                    after={"broker_shortfall": m.shortfall},
                )
                for m in told
            ]
        )
    report.sized_to_broker += [m.phrase for m in measured if m.shortfall]


def broker_nets(
    positions: Iterable[BrokerPositionRow],
) -> tuple[dict[PositionKey, int], set[PositionKey]]:
    """The broker's net quantity of each position it reported with a readable one (rows of
    one position summed), and the positions whose quantity it sent unreadable (left out of
    the first: not measured, never taken for flat)."""
    nets: dict[PositionKey, int] = {}
    unreadable: set[PositionKey] = set()
    for row in positions:
        if row.exchange_instrument_id is None:
            continue
        key = position_key(row)
        if row.net_qty is None:
            unreadable.add(key)
        else:
            nets[key] = nets.get(key, 0) + row.net_qty
    for key in unreadable:
        nets.pop(key, None)
    return nets, unreadable


def positions_lag_margin() -> timedelta:
    """How long before a positions read a change of the desk's legs may still be missing
    from it (settings.POSITIONS_LAG_MARGIN_SECONDS)."""
    return timedelta(seconds=settings.POSITIONS_LAG_MARGIN_SECONDS)


def _last_leg_changes(
    *, account: BrokerAccount, keys: set[PositionKey]
) -> dict[PositionKey, datetime]:
    """When any of the account's legs of each position last changed (any order: a bracket's
    or a single one, whose fills the broker's net holds too), in one query."""
    rows = (
        Order.objects.filter(account=account, exchange_instrument_id__in={key[1] for key in keys})
        .values_list("exchange_segment", "exchange_instrument_id", "product_type")
        .annotate(last=Max("legs__updated_at"))
        .order_by()
    )
    found = {}
    for segment, instrument_id, product, last in rows:
        key = (segment, int(instrument_id), product)
        if key in keys and last is not None:
            found[key] = last
    return found


def lower_shortfalls(
    *,
    account: BrokerAccount,
    positions: Iterable[BrokerPositionRow],
    read_at: datetime,
    actor: str,
) -> list[Shortfall]:
    """The monitoring cycle's measure of the account's brackets against the positions it
    read (`positions`, the whole book: a position not in it is flat; the read begun at
    `read_at`): a bracket's recorded shortfall (`Order.broker_shortfall`) is lowered where
    the broker holds more of it now (a buy back in its own terminal), stored and audited
    (`record_shortfalls`), so that step 4 puts its stop-loss and targets back over it in
    the same cycle. Never raised (`lowered_shortfall`). Nor lowered from a read that may
    lag the desk's legs (`read_is_current`): a position any of whose legs changed after the
    read began, or shortly before, is left as recorded for the next cycle to measure (its
    brackets share the broker's holding, so all of them). A position whose quantity the
    broker sent unreadable is left out. The caller holds the account's exclusion. Returns
    the brackets lowered."""
    nets, _unreadable = broker_nets(positions)
    proposed = []
    for m in measure_shortfalls(account=account, nets=nets):
        shortfall = lowered_shortfall(m.order.broker_shortfall, m.shortfall)
        if shortfall is not None:
            proposed.append(replace(m, shortfall=shortfall))
    if not proposed:
        return []
    last_changes = _last_leg_changes(
        account=account, keys={order_position_key(m.order) for m in proposed}
    )
    margin = positions_lag_margin()
    lowered = []
    for m in proposed:
        last_change = last_changes.get(order_position_key(m.order))
        if read_is_current(read_at, last_change, margin):
            lowered.append(m)
        else:
            logger.debug(
                "broker shortfall of order %s not lowered (%s to %s): its position's legs "
                "changed at %s, the positions were read at %s",
                m.order.pk,
                m.order.broker_shortfall,
                m.shortfall,
                last_change,
                read_at,
            )
    record_shortfalls(lowered, who="monitoring", actor=actor, report=ExitReport())
    return lowered


def allocate_to_brackets(
    holders: list[tuple[Order, list[OrderLeg], int]], reducing: int
) -> list[BracketExit]:
    """`reducing` units of exit spread over the holders, oldest first."""
    allocations = []
    for order, legs, free in holders:
        if reducing <= 0:
            break
        take = min(free, reducing)
        allocations.append(
            BracketExit(order=order, legs=legs, quantity=take, closes_all=take == free)
        )
        reducing -= take
    return allocations


def write_ahead_bracket_exits(
    allocations: list[BracketExit],
    *,
    account: BrokerAccount,
    exit_side: str,
    actor: str,
    reason: str,
) -> list[tuple[OrderLeg, Order]]:
    """MARKET exit legs on the brackets, split at the freeze quantity, written (with their
    audit) in one transaction before anything is sent."""
    specs = [
        (allocation.order, chunk)
        for allocation in allocations
        for chunk in chunks(allocation.quantity, allocation.order.instrument.freeze_quantity)
    ]
    if not specs:
        return []
    ensure_daily_counter(account_id=account.pk)
    pairs = []
    with transaction.atomic():
        identifiers = next_unique_identifiers(account_id=account.pk, count=len(specs))
        events = []
        for (order, chunk), identifier in zip(specs, identifiers, strict=True):
            leg = OrderLeg.objects.create(
                order=order,
                account=account,
                role=Role.EXIT,
                order_type=OrderType.MARKET,
                side=exit_side,
                quantity=chunk,
                unique_identifier=identifier,
                status=INITIAL_STATUS,
            )
            events.append(
                leg_change(
                    order,
                    leg,
                    kind=EventKind.EXIT_CREATED,
                    actor=actor,
                    message=f"{reason}: exit {chunk} of the bracket",
                )
            )
            pairs.append((leg, order))
        record_changes(events)
    return pairs


# ---- squaring positions off -----------------------------------------------------------------


@dataclass
class ExitReport:
    """What squaring positions off did: the working legs cancelled first (by the caller),
    the exits' new orders and legs sent (write_ahead_exits, send_exits), and every problem.
    The kill switch's and the positions page's results extend it."""

    exit_order_ids: list[int] = field(default_factory=list)
    exit_legs: list[str] = field(default_factory=list)
    cancelled_legs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Brackets whose position was not squared off (orders.services.square_off): protected
    # (their stop-loss and targets kept, or placed again at once), or not (the stop-loss
    # could not be placed: the trader must act at the broker). One phrase each ("RELIANCE
    # (order 12): stop-loss and targets kept").
    protected_order_ids: list[int] = field(default_factory=list)
    unprotected_order_ids: list[int] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)
    unprotected: list[str] = field(default_factory=list)
    # Brackets the broker holds less of than the desk (`record_shortfalls`): their exits,
    # stop-loss and targets sized to the broker's, or (its positions unreadable) to the
    # desk's own. One phrase each.
    sized_to_broker: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.errors

    @property
    def sized_words(self) -> str:
        """The brackets whose exits and protection were sized to what the broker holds, for
        the trader ('' when none)."""
        if not self.sized_to_broker:
            return ""
        return "The broker holds less than the desk: " + "; ".join(self.sized_to_broker) + "."

    @property
    def words(self) -> list[str]:
        """What the trader is told of the brackets, each sentence that applies: those left
        without a stop-loss, those protected (again), those sized to the broker."""
        return [w for w in (self.unprotected_words, self.protected_words, self.sized_words) if w]

    @property
    def unprotected_words(self) -> str:
        """The brackets not squared off and without a stop-loss, for the trader ('' when none)."""
        if not self.unprotected:
            return ""
        return (
            "NOT squared off and WITHOUT a stop-loss, square off at the broker now: "
            + "; ".join(self.unprotected)
            + "."
        )

    @property
    def protected_words(self) -> str:
        """The brackets not squared off that stay protected, for the trader ('' when none)."""
        if not self.protected:
            return ""
        return "Not squared off, still protected: " + "; ".join(self.protected) + "."


def mark_exit_requested(*, orders: list[Order], actor: str, kind: EventKind, message: str) -> None:
    """The orders exit-requested (the monitoring loop puts no new stop-loss or target back on
    them), each with its audit event. The caller holds their rows locked. The exit covers
    the entry's fills as last rolled up; `note_exit_covers` brings that up to date once the
    exit is measured. An order already exit-requested (a second kill switch, one after a
    position exit) keeps its mark as it is, with no second event."""
    unmarked = [order for order in orders if order.exit_requested_at is None]
    if not unmarked:
        return
    now = timezone.now()
    Order.objects.filter(pk__in=[o.pk for o in unmarked]).update(
        exit_requested_at=now,
        exit_requested_entry_filled=F("filled_quantity"),
        updated_at=now,
    )
    record_changes(
        [new_event(order=order, kind=kind, actor=actor, message=message) for order in unmarked]
    )


def clear_exit_requested(
    *, orders: list[Order], actor: str, kind: EventKind, messages: dict[int, str]
) -> None:
    """The orders no longer exit-requested (step 4 covers their position again), each with
    its audit event (`messages`, by order id), in one transaction."""
    if not orders:
        return
    with transaction.atomic():
        Order.objects.filter(pk__in=[o.pk for o in orders]).update(
            exit_requested_at=None, exit_requested_entry_filled=None, updated_at=timezone.now()
        )
        record_changes(
            [
                new_event(order=order, kind=kind, actor=actor, message=messages[order.pk])
                for order in orders
            ]
        )
    for order in orders:
        order.exit_requested_at = None
        order.exit_requested_entry_filled = None


def note_exit_covers(*, order_ids: list[int]) -> None:
    """Those of the orders still exit-requested cover their entry's fills as the legs show
    them now: the exit was measured from the broker's positions, read after the legs were
    (orders.services.square_off). What the entry fills beyond that came later
    (orders.services.late_fills)."""
    if not order_ids:
        return
    filled = (
        OrderLeg.objects.filter(order=OuterRef("pk"), role=Role.ENTRY)
        .values("order")
        .annotate(total=Sum("filled_quantity"))
        .values("total")
    )
    Order.objects.filter(pk__in=order_ids, exit_requested_at__isnull=False).update(
        exit_requested_entry_filled=Subquery(filled)
    )


def send_exits(
    *,
    account: BrokerAccount,
    pairs: list[tuple[OrderLeg, Order]],
    actor: str,
    result: ExitReport,
) -> list[SendOutcome]:
    """Send the exit legs written ahead (write_ahead_exits): a rejected one is an error in
    `result`, any other one an exit leg. Returns the outcomes, in the pairs' order."""
    if not pairs:
        return []
    outcomes = submit_legs(account=account, pairs=pairs, actor=actor)
    for outcome in outcomes:
        if outcome.rejected_reason:
            result.errors.append(
                f"exit {outcome.leg.unique_identifier} rejected: {outcome.rejected_reason}"
            )
        else:
            result.exit_legs.append(outcome.leg.unique_identifier)
    return outcomes


@dataclass
class ExitOutcomes:
    """What the broker did with exits sent for orders, by order id: the orders an exit of
    which it refused (with its reason), and those an exit of which is on its way."""

    rejected: dict[int, str] = field(default_factory=dict)
    on_their_way: set[int] = field(default_factory=set)

    @classmethod
    def of(cls, pairs: list[tuple[OrderLeg, Order]], outcomes: list[SendOutcome]) -> ExitOutcomes:
        found = cls()
        for outcome, (_leg, order) in zip(outcomes, pairs, strict=True):
            if outcome.rejected_reason:
                found.rejected[order.pk] = outcome.rejected_reason
            else:
                found.on_their_way.add(order.pk)
        return found

    def refused(self, among: set[int]) -> dict[int, str]:
        """The orders of `among` an exit of which was refused, each with what was: in part
        (split at the freeze quantity, some slices on their way) or in full."""
        return {
            order_id: ("part of its" if order_id in self.on_their_way else "its")
            + f" exit was rejected ({reason})"
            for order_id, reason in self.rejected.items()
            if order_id in among
        }


def write_ahead_exits(
    *,
    account: BrokerAccount,
    positions: list[BrokerPositionRow],
    actor: str,
    result: ExitReport,
    source: str = Order.Source.KILL_SWITCH,
    external_id: str = "kill-switch",
    reason: str = "kill switch",
    strategy: Strategy | None = None,
) -> list[tuple[OrderLeg, Order]]:
    """MARKET exit legs for every non-flat position in `positions`: first on the brackets
    holding it (so their books close), the remainder as new orders of `source` whose one
    leg is an EXIT (so the kill switch's trading lock lets them out); split at the freeze
    quantity. Problems go to `result.errors`, new orders' ids to `result.exit_order_ids`.
    Used by the kill switch and by a trader's (or OpenAlgo's) exit of positions."""
    pairs: list[tuple[OrderLeg, Order]] = []
    # One read of the instruments and one of the brackets holding them, for every position.
    instruments = _instruments_of(positions)
    brackets = (
        list(_filled_brackets(account=account, instrument_ids=[i.pk for i in instruments.values()]))
        if instruments
        else []
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
        instrument = instruments.get(
            (position.exchange_segment, int(position.exchange_instrument_id))
        )
        if instrument is None:
            result.errors.append(
                f"position {position.exchange_segment}:{position.exchange_instrument_id} has no "
                "known instrument; square it off at the broker"
            )
            continue
        quantity = abs(position.net_qty)
        holding_side = Side.BUY if exit_side == Side.SELL else Side.SELL
        holders = _free_to_exit(
            order
            for order in brackets
            if order.instrument_id == instrument.pk
            and order.product_type == position.product_type
            and order.side == holding_side
        )
        allocations = allocate_to_brackets(holders, quantity)
        pairs += write_ahead_bracket_exits(
            allocations, account=account, exit_side=exit_side, actor=actor, reason=reason
        )
        left = quantity - sum(a.quantity for a in allocations)
        plans = [
            OrderPlan(
                user_id=account.user_id,
                account=account,
                instrument=instrument,
                strategy=strategy,
                kind=Order.Kind.SINGLE,
                source=source,
                side=exit_side,
                product_type=position.product_type,
                quantity=chunk,
                order_type=OrderType.MARKET,
                limit_price=None,
                stop_price=None,
                external_id=external_id,
                leg_role=Role.EXIT,
            )
            for chunk in chunks(left, instrument.freeze_quantity)
        ]
        for order in write_ahead(plans=plans, actor=actor):
            pairs.append((order.entry_leg, order))
            result.exit_order_ids.append(order.pk)
    return pairs


# ---- changing a position --------------------------------------------------------------------


@dataclass
class PositionChangeResult:
    """What a change placed: exit legs on brackets and/or one single order."""

    exit_legs: list[OrderLeg] = field(default_factory=list)
    bracket_orders: list[Order] = field(default_factory=list)
    placement: PlacementResult | None = None
    errors: list[str] = field(default_factory=list)
    # Exit legs that never reached the broker (not sent: retry the change).
    not_sent: list[str] = field(default_factory=list)
    # The brackets exited in full whose exit was held back (a leg not cancelled) or the
    # broker refused, in part or in full: protected at once (orders.services.protection's
    # protect_again, protect_refused_exits), or not.
    protection: ExitReport = field(default_factory=ExitReport)

    @property
    def orders(self) -> list[Order]:
        found = [self.placement.order] if self.placement is not None else []
        return found + [o for o in self.bracket_orders if o not in found]

    @property
    def primary_order(self) -> Order | None:
        return self.orders[0] if self.orders else None

    @property
    def placed_anything(self) -> bool:
        return bool(self.exit_legs) or self.placement is not None

    @property
    def nothing_sent(self) -> bool:
        """Every exit leg was not sent and there is no single order (a retry may place)."""
        return (
            self.placement is None
            and bool(self.exit_legs)
            and len(self.not_sent) == len(self.exit_legs)
        )


@dataclass
class StandDown:
    """What standing a bracket down did: the problems that hold its exit back (a leg the
    broker would not cancel, or has not acknowledged yet), and whether its stop-loss or
    targets were cancelled all the same (to be placed again at once when it is held back)."""

    problems: list[str] = field(default_factory=list)
    protection_cancelled: bool = False


def _stand_down(allocation: BracketExit, *, actor: str) -> StandDown:
    """A bracket exited in full: no new protection (exit requested), its working entry,
    stop-loss and target legs cancelled before the exit goes out (a stop-loss left working
    would open the position again the other way). Any problem holds this bracket's exit
    back (as orders.positions.services does): it is unmarked, the failure is audited and
    reported, and the caller protects it again at once (`protect_again`: what the cancels
    that went through took from its stop-loss and targets)."""
    order = allocation.order
    marked_before = (order.exit_requested_at, order.exit_requested_entry_filled)
    now = timezone.now()
    covers = entry_filled(allocation.legs)
    Order.objects.filter(pk=order.pk).update(
        exit_requested_at=now, exit_requested_entry_filled=covers, updated_at=now
    )
    order.exit_requested_at, order.exit_requested_entry_filled = now, covers
    done = StandDown()
    problems = done.problems
    for leg in allocation.legs:
        if leg.role == Role.EXIT or leg.status not in OPEN_LEG_STATUSES:
            continue
        attempt = try_cancel_leg(
            order=order,
            leg=leg,
            actor=actor,
            kind=EventKind.LEG_CANCELLED if leg.role == Role.ENTRY else EventKind.EXIT_CANCELLED,
            failed_kind=EventKind.LEG_CANCELLED_FAILED,
        )
        if attempt.cancelled and leg.role != Role.ENTRY:
            done.protection_cancelled = True
        if not attempt.sent:
            problems.append(
                f"{order.symbol}: leg {leg.unique_identifier} is not acknowledged by the broker "
                "yet, so it cannot be cancelled"
            )
        elif attempt.error is not None:
            problems.append(
                f"{order.symbol}: could not cancel leg {leg.unique_identifier} "
                f"({attempt.error.message})"
            )
    if problems:
        # Some of its legs may be cancelled already: unmarked, so that step 4 places again
        # what its position lacks (marked, it never would: no stop-loss at all), at once.
        Order.objects.filter(pk=order.pk).update(
            exit_requested_at=marked_before[0], exit_requested_entry_filled=marked_before[1]
        )
        order.exit_requested_at, order.exit_requested_entry_filled = marked_before
        record_changes(
            [
                new_event(
                    order=order,
                    kind=EventKind.POSITIONS_EXIT_FAILED,
                    actor=actor,
                    message="exit of bracket not sent, its protection stands ("
                    + (
                        "its stop-loss and targets cancelled are placed again at once"
                        if done.protection_cancelled
                        else "its stop-loss and targets stay working"
                    )
                    + "): "
                    + "; ".join(problems),
                )
            ]
        )
    return done


def change_position(
    *,
    user: User,
    account: BrokerAccount,
    instrument: Instrument,
    product_type: str,
    side: str,
    quantity: int,
    current: int,
    actor: str,
    source: str,
    strategy_name: str = "",
    order_type: str = OrderType.MARKET,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    client_order_id: str = "",
    external_id: str = "",
) -> PositionChangeResult:
    """An order of `quantity` on `side` against a position of `current` (signed). The part
    that reduces the position goes to the brackets holding it first (MARKET only: a priced
    reduction of a bracket's position is refused, as it would leave the bracket's own
    exits working while it rests); the rest is one single order. Everything is validated
    before anything is written; the strategy named is the user's, made on first use (once
    the change is known to be valid). A strategy's change, so refused as a whole on an
    account the kill switch locked (TradingLocked). Runs under the account's exclusion. A
    bracket exited in full whose exit the broker refused, in part (split at the freeze
    quantity, some slices rejected) or in full, gets its stop-loss and targets back at once
    for what its exits on their way do not close (`result.protection`), as the kill
    switch's and a position exit's do; so does one whose exit was held back (a leg the
    broker would not cancel) for what the cancels that went through took."""
    if quantity <= 0:
        raise ValidationFailed(
            "quantity must be positive", details={"quantity": ["must be positive"]}
        )
    # reason: protection imports this module (its step 4 reads exits through it)
    from orders.services.protection import protect_again, protect_orders, protect_refused_exits

    ensure_trading_allowed_now(account.pk)
    with account_exclusion(account.pk, purpose="position change"):
        reduces = current > 0 if side == Side.SELL else current < 0
        reducing = min(quantity, abs(current)) if reduces else 0
        # The brackets of this position measured against what the broker holds (`current`):
        # none is exited, nor protected, beyond it.
        key = (instrument.exchange_segment, int(instrument.exchange_instrument_id), product_type)
        measured = measure_shortfalls(account=account, nets={key: current})
        holders = (
            brackets_holding(
                account=account,
                instrument=instrument,
                product_type=product_type,
                exit_side=side,
                shortfalls={m.order.pk: m.shortfall for m in measured},
            )
            if reducing
            else []
        )
        allocations = allocate_to_brackets(holders, reducing)
        allocated = sum(a.quantity for a in allocations)
        if allocated and order_type != OrderType.MARKET:
            raise ValidationFailed(
                "This position is held by desk brackets: reduce it with a MARKET order",
                details={
                    "order_type": [
                        "a priced order would rest while the brackets' own stop-loss and targets "
                        "keep working; use MARKET, or exit the brackets "
                        + ", ".join(str(a.order.pk) for a in allocations)
                    ]
                },
            )
        remainder = quantity - allocated
        single = None
        if remainder:
            single = SingleOrderRequest(
                account_id=account.pk,
                order_side=side,
                order_type=order_type,
                order_quantity=remainder,
                product_type=product_type,
                exchange_instrument_id=instrument.exchange_instrument_id,
                exchange_segment=instrument.exchange_segment,
                limit_price=limit_price,
                stop_price=stop_price,
                client_order_id=client_order_id,
                external_id=external_id,
            )
            validate_single_order(user=user, request=single)  # nothing written if it fails
        else:
            check_trading_window(account)
        if single is not None and strategy_name:
            single.strategy_name = strategy_named(user=user, name=strategy_name, actor=actor).name

        result = PositionChangeResult()
        record_shortfalls(measured, who="position change", actor=actor, report=result.protection)
        stood_down = {a.order.pk for a in allocations if a.closes_all}
        # The stop-loss and targets of a bracket the broker holds less of than the desk
        # trimmed to what it holds, first (one exited in full has them cancelled instead).
        trimmed = [m.order.pk for m in measured if m.shortfall and m.order.pk not in stood_down]
        if trimmed:
            result.errors += protect_orders(
                account=account, orders=orders_with_legs(trimmed), actor=actor
            ).errors
        if allocations:
            standing = []
            held_back: list[int] = []
            placed_again: set[int] = set()
            for allocation in allocations:
                stood = (
                    _stand_down(allocation, actor=actor) if allocation.closes_all else StandDown()
                )
                if stood.problems:
                    # A leg still working at the broker would open the position the other way
                    # once the exit filled: this bracket's exit is not sent.
                    result.errors.append(
                        f"bracket {allocation.order.pk}: nothing was sent for it, its protection "
                        "stands (" + "; ".join(stood.problems) + ")"
                    )
                    held_back.append(allocation.order.pk)
                    if stood.protection_cancelled:
                        placed_again.add(allocation.order.pk)
                else:
                    standing.append(allocation)
            # Held back after some of their legs were cancelled: protected again now, not
            # at the next monitoring cycle.
            protect_again(
                account,
                held_back,
                placed_again=placed_again,
                actor=actor,
                result=result.protection,
            )
            pairs = write_ahead_bracket_exits(
                standing, account=account, exit_side=side, actor=actor, reason="position change"
            )
            outcomes = submit_legs(account=account, pairs=pairs, actor=actor)
            for outcome in outcomes:
                result.exit_legs.append(outcome.leg)
                if outcome.not_sent:
                    result.not_sent.append(outcome.leg.unique_identifier)
                if outcome.rejected_reason:
                    result.errors.append(
                        f"exit {outcome.leg.unique_identifier} rejected: {outcome.rejected_reason}"
                    )
            result.bracket_orders = [a.order for a in allocations]
            roll_up_orders(order_ids=[a.order.pk for a in allocations], actor=actor)
            # The brackets exited in full (stood down: their stop-loss and targets
            # cancelled, exit-requested) whose exit the broker refused, in part or in full:
            # nothing protects what the refused slices were to close until step 4 does.
            refused = ExitOutcomes.of(pairs, outcomes).refused(
                {allocation.order.pk for allocation in standing if allocation.closes_all}
            )
            protect_refused_exits(
                account,
                refused,
                who="position change",
                kind=EventKind.POSITION_EXIT_PROTECTION_KEPT,
                actor=actor,
                result=result.protection,
            )
            result.errors += result.protection.errors
            for order in result.bracket_orders:
                order.refresh_from_db()
        if single is not None:
            result.placement = place_single_order(
                user=user, request=single, source=source, actor=actor
            )
        return result


class PositionDecision(Protocol):
    """A decided change of the live position: which way and how much."""

    @property
    def side(self) -> str: ...
    @property
    def quantity(self) -> int: ...


@dataclass
class LiveChange:
    """A change decided on the live position: `current` as the broker reported it, the
    (side, quantity) decided (None: already there) and what was placed."""

    current: int
    change: PositionDecision | None
    result: PositionChangeResult | None = None


def change_position_live(
    *,
    account: BrokerAccount,
    instrument: Instrument,
    product_type: str,
    decide: Callable[[int], PositionDecision | None],
    **change: Any,
) -> LiveChange:
    """Read the live position, `decide(current)` the change (an object with `side` and
    `quantity`, or None when there is nothing to do) and make it with `change_position`,
    all under the account's exclusion: two changes at once act one after the other, the
    second on what the first left. A locked account is refused before anything is read."""
    ensure_trading_allowed_now(account.pk)
    with account_exclusion(account.pk, purpose="position change"):
        current = net_quantity(
            instrument=instrument,
            product_type=product_type,
            positions=read_positions(account),
        )
        decided = decide(current)
        if decided is None:
            return LiveChange(current=current, change=None)
        result = change_position(
            account=account,
            instrument=instrument,
            product_type=product_type,
            side=decided.side,
            quantity=decided.quantity,
            current=current,
            **change,
        )
    return LiveChange(current=current, change=decided, result=result)
