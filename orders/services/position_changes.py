"""Changing a position by an amount or to a target, and squaring an account off, without
leaving a bracket's protection behind.

A position on the desk may be held by brackets, whose stop-loss and targets keep working at
the broker. A plain opposite order would flatten the position but leave those legs working:
one of them fills later and opens the position again the other way, unprotected. So the
part of a change that reduces a position is given first to the brackets holding it, as
MARKET exit legs on those brackets (oldest first, as the kill switch does); their
stop-loss and targets then shrink with the exit (protection's one-cancels-other), and a
bracket exited in full has its working legs cancelled first and is marked exit-requested.
What is left (the part not held by brackets, or the part that opens or flips a position)
is one single order through the one placement path (validation, write-ahead, idempotency).

The broker's positions are read live (`net_quantity`): a target is only as good as the
position it is measured from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import BrokerAccount
from accounts.services import strategy_named
from orders.brokers.base import BrokerPositionRow
from orders.domain.rollup import open_position_of
from orders.domain.vocabulary import OPEN_LEG_STATUSES, EventKind, LegStatus
from orders.models import Instrument, Order, OrderLeg, OrderType, Side
from orders.services.audit import leg_state, new_event, record_changes
from orders.services.broker_calls import OUTCOME_REJECTED, submit_legs
from orders.services.broker_reads import read_positions
from orders.services.changes import cancel_leg
from orders.services.identifiers import ensure_daily_counter, next_unique_identifiers
from orders.services.lifecycle import INITIAL_STATUS
from orders.services.placement import PlacementResult, place_single_order
from orders.services.sync import roll_up_orders
from orders.validation import SingleOrderRequest, check_trading_window, validate_single_order
from trading_site.core.errors import BrokerUnavailableError, ValidationFailed

Role = OrderLeg.Role


# ---- reading positions ----------------------------------------------------------------------


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


# ---- changing a position --------------------------------------------------------------------


@dataclass
class PositionChangeResult:
    """What a change placed: exit legs on brackets and/or one single order."""

    exit_legs: list[OrderLeg] = field(default_factory=list)
    bracket_orders: list[Order] = field(default_factory=list)
    placement: PlacementResult | None = None
    errors: list[str] = field(default_factory=list)

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


@dataclass
class _Allocation:
    order: Order
    legs: list[OrderLeg]
    quantity: int
    closes_all: bool


def _chunks(quantity: int, freeze: int | None) -> list[int]:
    if not freeze or quantity <= freeze:
        return [quantity]
    full, rest = divmod(quantity, freeze)
    return [freeze] * full + ([rest] if rest else [])


def _working_exit_quantity(legs: list[OrderLeg]) -> int:
    return sum(
        max(0, leg.quantity - leg.filled_quantity)
        for leg in legs
        if leg.role == Role.EXIT and leg.status in OPEN_LEG_STATUSES
    )


def brackets_holding(
    *, account: BrokerAccount, instrument: Instrument, product_type: str, exit_side: str
) -> list[tuple[Order, list[OrderLeg], int]]:
    """The brackets whose open position an order on `exit_side` would reduce, oldest
    first, each with its legs and the quantity still free to exit (open position minus the
    exits already on their way)."""
    holding_side = Side.BUY if exit_side == Side.SELL else Side.SELL
    brackets = (
        Order.objects.filter(
            account=account,
            kind=Order.Kind.BRACKET,
            instrument=instrument,
            product_type=product_type,
            side=holding_side,
            filled_quantity__gt=0,
            status__in=(Order.Status.PARTIALLY_FILLED, Order.Status.FILLED),
            archived_at=None,
        )
        .select_related("instrument")
        .prefetch_related("legs")
        .order_by("id")
    )
    found = []
    for order in brackets:
        legs = list(order.legs.all())
        free = open_position_of(legs) - _working_exit_quantity(legs)
        if free > 0:
            found.append((order, legs, free))
    return found


def _allocate(holders: list[tuple[Order, list[OrderLeg], int]], reducing: int) -> list[_Allocation]:
    allocations = []
    for order, legs, free in holders:
        if reducing <= 0:
            break
        take = min(free, reducing)
        allocations.append(
            _Allocation(order=order, legs=legs, quantity=take, closes_all=take == free)
        )
        reducing -= take
    return allocations


def _stand_down(allocation: _Allocation, *, actor: str) -> None:
    """A bracket exited in full: no new protection (exit requested), its working entry,
    stop-loss and target legs cancelled before the exit goes out (a stop-loss left working
    would open the position again the other way)."""
    order = allocation.order
    now = timezone.now()
    Order.objects.filter(pk=order.pk).update(exit_requested_at=now, updated_at=now)
    order.exit_requested_at = now
    for leg in allocation.legs:
        if leg.role == Role.EXIT or leg.status not in OPEN_LEG_STATUSES:
            continue
        if leg.status == LegStatus.PENDING_SUBMIT or not leg.broker_order_id:
            continue  # not acknowledged yet: the next sync settles it, protection trims it
        cancel_leg(
            order=order,
            leg=leg,
            actor=actor,
            kind=EventKind.LEG_CANCELLED if leg.role == Role.ENTRY else EventKind.EXIT_CANCELLED,
            failed_kind=EventKind.LEG_CANCELLED_FAILED,
            raise_errors=False,
        )


def _write_ahead_exit_legs(
    allocations: list[_Allocation], *, account: BrokerAccount, exit_side: str, actor: str
) -> list[tuple[OrderLeg, Order]]:
    specs = [
        (allocation.order, chunk)
        for allocation in allocations
        for chunk in _chunks(allocation.quantity, allocation.order.instrument.freeze_quantity)
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
                new_event(
                    order=order,
                    leg=leg,
                    kind=EventKind.EXIT_CREATED,
                    actor=actor,
                    message=f"position change: exit {chunk} of the bracket",
                    after=leg_state(leg),
                )
            )
            pairs.append((leg, order))
        record_changes(events)
    return pairs


def change_position(
    *,
    user,
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
    the change is known to be valid)."""
    if quantity <= 0:
        raise ValidationFailed(
            "quantity must be positive", details={"quantity": ["must be positive"]}
        )
    reduces = current > 0 if side == Side.SELL else current < 0
    reducing = min(quantity, abs(current)) if reduces else 0
    holders = (
        brackets_holding(
            account=account, instrument=instrument, product_type=product_type, exit_side=side
        )
        if reducing
        else []
    )
    allocations = _allocate(holders, reducing)
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
        single.strategy_name = strategy_named(user=user, name=strategy_name).name

    result = PositionChangeResult()
    if allocations:
        for allocation in allocations:
            if allocation.closes_all:
                _stand_down(allocation, actor=actor)
        pairs = _write_ahead_exit_legs(allocations, account=account, exit_side=side, actor=actor)
        outcomes = submit_legs(account=account, pairs=pairs, actor=actor)
        for outcome in outcomes:
            result.exit_legs.append(outcome.leg)
            if outcome.result == OUTCOME_REJECTED:
                result.errors.append(
                    f"exit {outcome.leg.unique_identifier} rejected: {outcome.rejected_reason}"
                )
        result.bracket_orders = [a.order for a in allocations]
        roll_up_orders(order_ids=[a.order.pk for a in allocations], actor=actor)
        for order in result.bracket_orders:
            order.refresh_from_db()
    if single is not None:
        result.placement = place_single_order(user=user, request=single, source=source, actor=actor)
    return result


# ---- squaring off ---------------------------------------------------------------------------


@dataclass
class SquareOffResult:
    changes: list[PositionChangeResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def placed_anything(self) -> bool:
        return any(change.placed_anything for change in self.changes)


def square_off_positions(
    *,
    user,
    account: BrokerAccount,
    actor: str,
    source: str,
    strategy_name: str = "",
    client_order_id_prefix: str = "",
) -> SquareOffResult:
    """MARKET orders closing every open position of the account (through `change_position`,
    so brackets holding a position exit through their own legs). Open orders are left
    alone (the kill switch cancels them too). A position that cannot be closed is reported,
    and the rest are still closed."""
    check_trading_window(account)
    result = SquareOffResult()
    for index, row in enumerate(read_positions(account)):
        if row.net_qty is None:
            result.errors.append(
                f"{row.trading_symbol or row.exchange_instrument_id}: the broker's quantity is "
                "unreadable; close it at the broker"
            )
            continue
        if not row.net_qty:
            continue
        instrument = Instrument.objects.filter(
            exchange_segment=row.exchange_segment,
            exchange_instrument_id=row.exchange_instrument_id,
        ).first()
        if instrument is None:
            result.errors.append(
                f"{row.exchange_segment}:{row.exchange_instrument_id} is not in the instrument "
                "master; close it at the broker"
            )
            continue
        key = f"{client_order_id_prefix}{index}" if client_order_id_prefix else ""
        try:
            change = change_position(
                user=user,
                account=account,
                instrument=instrument,
                product_type=row.product_type,
                side=Side.SELL if row.net_qty > 0 else Side.BUY,
                quantity=abs(row.net_qty),
                current=row.net_qty,
                actor=actor,
                source=source,
                strategy_name=strategy_name,
                client_order_id=key,
                external_id="close-position",
            )
        except (ValidationFailed, BrokerUnavailableError) as exc:
            result.errors.append(f"{instrument.trading_symbol}: {exc.message}")
            continue
        result.changes.append(change)
        result.errors.extend(change.errors)
    return result
