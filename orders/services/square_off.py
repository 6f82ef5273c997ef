"""Squaring positions off without leaving a filled bracket without its stop-loss: the order of
the work that the kill switch (orders.services.kill_switch) and a trader's position exit
(orders.positions.services) share. Each first marks the brackets it acts on exit-requested
(the monitoring loop puts no stop-loss or target back meanwhile) and applies the broker's
order book; then `square_off`:
1. cancels every working leg it is given but the brackets' stop-loss and targets (entries
   first: no position grows while the rest runs);
2. reads the broker's positions. When they cannot be, nothing is squared off and the
   stop-loss and targets are never cancelled;
3. cancels the stop-loss and targets, and reads the positions again: what the exits are
   measured from is read after the cancels it depends on (a stop-loss that filled meanwhile
   is in it). Unreadable now, the stop-loss and targets are placed again at once, for the
   desk's own position (the answer says so). Read, the brackets are measured against them
   (`position_changes.measure_shortfalls`): what of a bracket the broker does not hold (a
   trade in its own terminal, its risk system) is recorded, audited and told, and no exit,
   stop-loss or target placed from here on covers it;
4. sends MARKET exits for the positions the caller chooses, except one that a leg still
   working at the broker (one the broker would not cancel, or has not acknowledged yet)
   could close too: a market exit beside it could exit twice and reverse the position;
5. gives a bracket whose position was not squared off (its exit rejected, held back, not
   chosen or never written) back, at once, what the cancels took from it: no longer
   exit-requested, protected by step 4's `protect_orders`; so is one exit-requested
   before (an earlier exit refused in part) whose stop-loss or targets the cancels took
   (a second kill switch that cannot read the positions leaves it as it found it). A
   bracket whose exit was rejected in part (split at the freeze quantity, some slices
   refused) stays exit-requested, and step 4 places its stop-loss and targets at once for
   what the exits on their way do not take (protection's `exiting_quantity`): the rejected slices'
   quantity, never what an exit also closes. The report names every such bracket, and any
   whose stop-loss could not be placed.
A bracket left exit-requested covers its entry's fills as they are then (`note_exit_covers`):
an entry that could not be cancelled and fills later is squared off at once
(orders.services.late_fills).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from asgiref.sync import async_to_sync

from accounts.models import BrokerAccount
from accounts.services import strategy_named
from orders.brokers.base import BrokerError, BrokerPositionRow
from orders.domain.exit_sizing import protectable
from orders.domain.rollup import open_position_of
from orders.domain.vocabulary import EventKind
from orders.models import Order, OrderLeg, Side
from orders.selectors import orders_with_legs
from orders.services.broker_calls import SendOutcome, client_for
from orders.services.changes import cancel_working_legs
from orders.services.position_changes import (
    ExitOutcomes,
    ExitReport,
    PositionKey,
    broker_nets,
    clear_exit_requested,
    measure_shortfalls,
    note_exit_covers,
    order_position_key,
    position_key,
    record_shortfalls,
    send_exits,
    write_ahead_exits,
)
from orders.services.protection import protect_again, protect_refused_exits

Role = OrderLeg.Role
PROTECTIVE_ROLES = (Role.STOP_LOSS, Role.TAKE_PROFIT)

# The positions to square off among those read (none held back), and the positions left
# alone on purpose, each with why (their brackets are protected again).
Chooser = Callable[
    [list[BrokerPositionRow]], tuple[list[BrokerPositionRow], dict[PositionKey, str]]
]


@dataclass(frozen=True)
class SquareOffTerms:
    """Who squares off: its name in the audit trail's messages, the kinds of the audit
    events of its cancels and of a bracket it leaves protected, and whose the new exit
    orders are (`write_ahead_exits`; a strategy named is the trader's, made on first use
    once there is a position to square off)."""

    who: str
    cancel_kind: EventKind
    cancel_failed_kind: EventKind
    kept_kind: EventKind
    source: str
    external_id: str
    strategy_name: str = ""


@dataclass
class SquareOff:
    """What `square_off` did, for the caller's own report: the legs cancelled, the broker's
    positions the exits were measured from (None: they could not be read), those chosen and
    not held back, and the exit legs written (with their orders) and their outcomes, in the
    same order."""

    cancelled: list[OrderLeg] = field(default_factory=list)
    positions: list[BrokerPositionRow] | None = None
    chosen: list[BrokerPositionRow] = field(default_factory=list)
    pairs: list[tuple[OrderLeg, Order]] = field(default_factory=list)
    outcomes: list[SendOutcome] = field(default_factory=list)


def square_off(
    *,
    account: BrokerAccount,
    actor: str,
    brackets: list[Order],
    working: list[OrderLeg],
    terms: SquareOffTerms,
    result: ExitReport,
    choose: Chooser | None = None,
) -> SquareOff:
    """Cancel `working` and square off the positions `choose` picks among the broker's
    (every one when None) in the order the module docstring gives. `brackets`: those the
    caller marked exit-requested, as read before the mark (those it marked anew have none);
    the ones whose position was not squared off are protected again, among those marked
    before only the ones whose stop-loss or targets these cancels took. Problems, the
    brackets protected and those not, go to `result`."""
    done = SquareOff()
    still_working = _cancel(
        [leg for leg in working if leg.role not in PROTECTIVE_ROLES], terms, actor, result, done
    )
    protective = [leg for leg in working if leg.role in PROTECTIVE_ROLES]
    positions = _read_positions(account, result, when="")
    if positions is not None and protective:
        still_working += _cancel(protective, terms, actor, result, done)
        positions = _read_positions(account, result, when=" after the stop-losses were cancelled")
    cancelled = {leg.pk for leg in done.cancelled}
    placed_again = {leg.order_id for leg in protective if leg.pk in cancelled}
    # Given back what the cancels took when their position is not squared off: the brackets
    # the caller marked, and those exit-requested before (an earlier exit refused in part)
    # whose stop-loss or targets these cancels took.
    at_stake = [o for o in brackets if o.exit_requested_at is None or o.pk in placed_again]
    refused: dict[int, str] = {}
    if positions is None:
        reasons = dict.fromkeys(
            [o.pk for o in at_stake], "the broker's positions could not be read"
        )
    else:
        done.positions = positions
        _size_to_broker(account, positions, brackets, terms=terms, actor=actor, result=result)
        reasons, refused = _exits(
            account,
            positions,
            at_stake=at_stake,
            still_working=still_working,
            choose=choose,
            terms=terms,
            actor=actor,
            result=result,
            done=done,
        )
    _keep_protected(
        account,
        at_stake,
        reasons=reasons,
        placed_again=placed_again,
        measured=positions is not None,
        terms=terms,
        actor=actor,
        result=result,
    )
    note_exit_covers(order_ids=[o.pk for o in brackets])
    # After the covers are noted: an entry's fill the exits were measured with is not late.
    protect_refused_exits(
        account, refused, who=terms.who, kind=terms.kept_kind, actor=actor, result=result
    )
    return done


def _exits(
    account: BrokerAccount,
    positions: list[BrokerPositionRow],
    *,
    at_stake: list[Order],
    still_working: list[OrderLeg],
    choose: Chooser | None,
    terms: SquareOffTerms,
    actor: str,
    result: ExitReport,
    done: SquareOff,
) -> tuple[dict[int, str], dict[int, str]]:
    """MARKET exits for the positions chosen among `positions` (read after the cancels) but
    those held back. Returns why each bracket of `at_stake` (`square_off`'s) whose position
    was not squared off was not, and the other brackets whose exit the broker refused, in
    part (some of its slices on their way) or, for one exit-requested before whose
    stop-loss and targets were not cancelled, in full, each with what was refused (both by
    order id)."""
    held_back = _held_back(positions, still_working, result)
    candidates = [p for p in positions if position_key(p) not in held_back]
    chosen, skipped = choose(candidates) if choose is not None else (candidates, {})
    done.chosen = chosen
    strategy = (
        strategy_named(user=account.user, name=terms.strategy_name, actor=actor)
        if terms.strategy_name and any(p.net_qty for p in chosen)
        else None
    )
    done.pairs = write_ahead_exits(
        account=account,
        positions=chosen,
        actor=actor,
        result=result,
        source=terms.source,
        external_id=terms.external_id,
        reason=terms.who,
        strategy=strategy,
    )
    done.outcomes = send_exits(account=account, pairs=done.pairs, actor=actor, result=result)
    sent = ExitOutcomes.of(done.pairs, done.outcomes)
    written = {order_position_key(order) for _leg, order in done.pairs}
    unwritten = {
        position_key(p) for p in chosen if p.net_qty != 0 and position_key(p) not in written
    }
    reasons: dict[int, str] = {}
    for order in at_stake:
        position = order_position_key(order)
        if order.pk in sent.on_their_way:
            continue  # squared off, or in part: `refused` below
        if position in held_back:
            reasons[order.pk] = held_back[position]
        elif position in skipped:
            reasons[order.pk] = skipped[position]
        elif order.pk in sent.rejected:
            reasons[order.pk] = f"its exit was rejected: {sent.rejected[order.pk]}"
        elif position in unwritten:
            reasons[order.pk] = "no exit could be written for it"
    # Refused, but not to be given back whole (protection.protect_refused_exits): some of
    # its exits are on their way, or (exit-requested before this) an earlier exit may be.
    refused = sent.refused(
        {
            order.pk
            for _leg, order in done.pairs
            if order.kind == Order.Kind.BRACKET and order.pk not in reasons
        }
    )
    return reasons, refused


def _size_to_broker(
    account: BrokerAccount,
    positions: list[BrokerPositionRow],
    brackets: list[Order],
    *,
    terms: SquareOffTerms,
    actor: str,
    result: ExitReport,
) -> None:
    """The positions of `brackets` measured against `positions` (the broker's, read after
    the cancels; one it does not report it holds none of): what of each bracket the broker
    does not hold is recorded, audited and named in `result`, and neither exited
    (`write_ahead_exits`) nor protected again (protection's `plan_exits`). A position whose
    quantity the broker sent unreadable is left as it was (`write_ahead_exits` reports it)."""
    nets, unreadable = broker_nets(positions)
    keys = {order_position_key(order) for order in brackets} - unreadable
    record_shortfalls(
        measure_shortfalls(account=account, nets={key: nets.get(key, 0) for key in keys}),
        who=terms.who,
        actor=actor,
        report=result,
    )


def _cancel(
    legs: list[OrderLeg], terms: SquareOffTerms, actor: str, result: ExitReport, done: SquareOff
) -> list[OrderLeg]:
    """Cancel `legs` at the broker, reporting each one that was not; returns those that may
    still be working there."""
    attempts = cancel_working_legs(
        legs, actor=actor, kind=terms.cancel_kind, failed_kind=terms.cancel_failed_kind
    )
    still_working = []
    for attempt in attempts:
        leg = attempt.leg
        if attempt.cancelled:
            result.cancelled_legs.append(leg.unique_identifier)
            done.cancelled.append(leg)
            continue
        still_working.append(leg)
        if attempt.error is None:
            result.errors.append(
                f"{leg.order.symbol}: leg {leg.unique_identifier} is not acknowledged by the "
                "broker yet; it cannot be cancelled until the next sync"
            )
        else:
            result.errors.append(
                f"{leg.order.symbol}: could not cancel leg {leg.unique_identifier}: "
                f"{attempt.error.message}"
            )
    return still_working


def _read_positions(
    account: BrokerAccount, result: ExitReport, *, when: str
) -> list[BrokerPositionRow] | None:
    """The broker's positions now; None (reported) when they cannot be read."""
    try:
        return async_to_sync(client_for(account).positions)()
    except BrokerError as exc:
        result.errors.append(f"positions unavailable{when}, nothing squared off: {exc.message}")
        return None


def _held_back(
    positions: list[BrokerPositionRow], still_working: list[OrderLeg], result: ExitReport
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


def _keep_protected(
    account: BrokerAccount,
    brackets: list[Order],
    *,
    reasons: dict[int, str],
    placed_again: set[int],
    measured: bool,
    terms: SquareOffTerms,
    actor: str,
    result: ExitReport,
) -> None:
    """The brackets of `brackets` named in `reasons` (by order id: why their position was
    not squared off) that hold a position are no longer exit-requested, and what the
    cancels took from their stop-loss and targets (`placed_again`: the orders some of
    them were cancelled of) is placed again now: protection's step 4 for them
    (`protect_again`), for what the broker holds of their position (`measured`: the broker's
    positions were read; else for the desk's own position, and the trader is told so). Each
    is audited and named in `result`: protected, or not when its stop-loss could not be
    placed."""
    holding = [
        order
        for order, legs in orders_with_legs([o.pk for o in brackets if o.pk in reasons])
        if protectable(open_position_of(legs), order.broker_shortfall) > 0
    ]
    if not holding:
        return
    unmeasured = ", for the desk's own position (the broker's positions could not be read)"
    clear_exit_requested(
        orders=holding,
        actor=actor,
        kind=terms.kept_kind,
        messages={
            order.pk: f"{terms.who}: position not squared off ({reasons[order.pk]}); its "
            + (
                "stop-loss and targets are placed again at once"
                if order.pk in placed_again
                else "stop-loss and targets stay working"
            )
            + ("" if measured or order.pk not in placed_again else unmeasured)
            for order in holding
        },
    )
    protect_again(
        account,
        [order.pk for order in holding],
        placed_again=placed_again,
        actor=actor,
        result=result,
        caveat="" if measured else unmeasured,
    )
