"""The 10 steps of a monitoring cycle, one function each (the matrix is monitoring.pipeline).

Each step takes the executor's `CycleState` (its `context` is a `CycleContext`), calls
other apps' services, and fails by raising `StepFailed` with one message per problem.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from asgiref.sync import async_to_sync
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import BrokerAccount, BrokerSession
from monitoring import repricing
from monitoring.pipeline import CycleState, StepFailed
from orders import services as order_services
from orders.brokers.base import SessionExpired
from orders.brokers.messages import trader_message
from orders.brokers.sessions import BrokerClient, connect_account, stored_sessions
from orders.models import FairPrice, OrderLeg, OrderType
from orders.selectors import repricing_anchors
from orders.services import regeneration, store_broker_snapshots, sync_account_orders
from orders.services.position_changes import lower_shortfalls
from orders.services.sync import books_digest, readable_trades
from pnl.intraday import record_cycle_samples
from pnl.services import compute_account_pnl_if_changed
from trading_site.core import realtime
from trading_site.core.prepared import PreparedRows

logger = logging.getLogger(__name__)

ACTOR = "monitoring"
UNFILLED = (OrderLeg.Status.OPEN, OrderLeg.Status.PARTIALLY_FILLED)


@dataclass
class AccountSnapshot:
    order_book: list
    trades: list
    positions: list
    balance: Any
    # When the reads began (before any of them was sent): what the desk's legs recorded
    # after it may be missing from them (step 4 lowers no broker shortfall from them then).
    read_at: datetime


@dataclass
class CycleContext:
    user_id: int
    cycle_key: str
    accounts: list[BrokerAccount]
    snapshots: dict[int, AccountSnapshot] = field(default_factory=dict)
    pnl: dict[int, Any] = field(default_factory=dict)
    expired_account_ids: list[int] = field(default_factory=list)
    synced_account_ids: list[int] = field(default_factory=list)
    # Each account's fingerprint of step 1's order and trade books (orders.services.sync.
    # books_digest): steps 1 and 3 skip what unchanged books and legs leave to do.
    book_digests: dict[int, str] = field(default_factory=dict)
    # The working stop-losses (stop-limit and stop-market) read by step 5 together with its
    # entries (one query for both steps); step 6 uses them (step 5 never touches one).
    stop_loss_legs: list[StopLimitLeg] | None = None


def _ctx(state: CycleState) -> CycleContext:
    return state.context


def _fail_if(errors: list[str]) -> None:
    if errors:
        raise StepFailed(errors)


# ---- step 1 -------------------------------------------------------------------------------


def _reestablish_invalidated_sessions(
    accounts: list[BrokerAccount], sessions: dict[int, BrokerSession]
) -> list[str]:
    """A session marked for re-login by an earlier cycle is logged in again first (the new
    one replaces it in `sessions`)."""
    errors = []
    for account in accounts:
        row = sessions.get(account.pk)
        if row is not None and row.invalidated_at is not None:
            try:
                sessions[account.pk] = connect_account(account)
            except Exception as exc:
                reason = trader_message(exc, account_id=account.pk)
                errors.append(f"{account.account_name}: broker login failed: {reason}")
    return errors


async def _fetch_all(clients: list[BrokerClient]) -> list[Any]:
    """Order book, trade book, positions and balance of every account, all at once: per
    account its `BrokerSnapshot` (each read on its own), or the exception that stopped it."""
    return await asyncio.gather(*(client.snapshot() for client in clients), return_exceptions=True)


def _fetch_snapshots(clients: list[BrokerClient]) -> list[Any]:
    """`_fetch_all`'s answers in the clients' order. Brokers in our database (paper) are
    read here, in this thread, one after the other (their reads would take turns on this
    thread's connection anyway); the others all at once on an event loop."""
    fetched: list[Any] = []
    for client in clients:
        try:
            fetched.append(client.snapshot_here())
        except Exception as exc:  # as gather(return_exceptions=True) hands it over
            fetched.append(exc)
    elsewhere = [n for n, snapshot in enumerate(fetched) if snapshot is None]
    if elsewhere:
        answers = async_to_sync(_fetch_all)([clients[n] for n in elsewhere])
        for n, answer in zip(elsewhere, answers, strict=True):
            fetched[n] = answer
    return fetched


# What each read of step 1 is called in an error, and whether later steps need it: PnL and
# the order sync cannot run on a missing order book or trade book; positions and the
# balance are only stored, so the cycle goes on without them (the error is reported).
_READ_NAMES = {
    "order_book": "order book",
    "trades": "trade book",
    "positions": "positions",
    "balance": "balance",
}
_NEEDED_READS = ("order_book", "trades")


def fetch_broker_data(state: CycleState) -> dict:
    ctx = _ctx(state)
    # Every account's stored session in one read: the invalidated ones are logged in again
    # here, the others are handed to their clients (no read per account at its first call).
    sessions = stored_sessions([account.pk for account in ctx.accounts])
    errors = _reestablish_invalidated_sessions(ctx.accounts, sessions)
    _fail_if(errors)
    clients = [
        BrokerClient(account, stored_session=sessions.get(account.pk)) for account in ctx.accounts
    ]
    read_at = timezone.now()
    fetched = _fetch_snapshots(clients)
    for account, snapshot in zip(ctx.accounts, fetched, strict=True):
        name = account.account_name
        if isinstance(snapshot, BaseException):
            reason = trader_message(snapshot, account_id=account.pk)
            errors.append(f"{name}: broker data unavailable: {reason}")
            continue
        expired = any(isinstance(e, SessionExpired) for e in snapshot.errors.values())
        if expired:
            # The client marked the session invalid after its one re-login failed: the
            # next cycle logs in again before fetching.
            ctx.expired_account_ids.append(account.pk)
            errors.append(f"{name}: broker session expired; will log in again")
        else:
            for read, exc in snapshot.errors.items():
                reason = trader_message(exc, account_id=account.pk)
                message = f"{name}: broker {_READ_NAMES[read]} unavailable: {reason}"
                if read in _NEEDED_READS:
                    errors.append(message)
                else:
                    state.report(message)
        digest = books_digest(order_book=snapshot.order_book, trades=snapshot.trades)
        ctx.book_digests[account.pk] = digest
        # Whatever could be read is stored, even when another read failed.
        problems = store_broker_snapshots(
            account=account,
            order_book=snapshot.order_book,
            trades=snapshot.trades,
            positions=snapshot.positions,
            balance=snapshot.balance,
            book_digest=digest,
        )
        for problem in problems:
            state.report(f"{name}: {problem}")
        if snapshot.order_book is not None and snapshot.trades is not None:
            ctx.snapshots[account.pk] = AccountSnapshot(
                snapshot.order_book,
                readable_trades(snapshot.trades),
                snapshot.positions,
                snapshot.balance,
                read_at,
            )
        elif not expired and not any(read in snapshot.errors for read in _NEEDED_READS):
            errors.append(f"{name}: broker data incomplete")
    _fail_if(errors)
    return {"accounts": len(ctx.accounts), "broker_calls": 4 * len(ctx.accounts)}


# ---- steps 2-4 ----------------------------------------------------------------------------


def compute_pnl(state: CycleState) -> dict:
    ctx = _ctx(state)
    errors = []
    skipped = 0
    for account in ctx.accounts:
        snapshot = ctx.snapshots[account.pk]
        try:
            # Unchanged fills, leg links and prices: the stored figures stand (None).
            result = compute_account_pnl_if_changed(
                account=account, order_book=snapshot.order_book, trades=snapshot.trades
            )
            skipped += result is None
            ctx.pnl[account.pk] = result
        except Exception as exc:
            logger.exception("pnl failed", extra={"account_id": account.pk})
            errors.append(f"{account.account_name}: PnL failed: {exc}")
    # The intraday MTM curve's point of this cycle, and the positions pushed live.
    record_cycle_samples(ctx.accounts)
    _fail_if(errors)
    return {"accounts": len(ctx.pnl), "unchanged": skipped}


def sync_orders(state: CycleState) -> dict:
    ctx = _ctx(state)
    errors = []
    for account in ctx.accounts:
        snapshot = ctx.snapshots[account.pk]
        try:
            # The sync is one transaction per account (none when the books and legs are
            # unchanged): a failure rolls back that account's sync only.
            sync_account_orders(
                account=account,
                order_book=snapshot.order_book,
                positions=snapshot.positions,
                book_digest=ctx.book_digests.get(account.pk),
            )
            ctx.synced_account_ids.append(account.pk)
        except Exception as exc:
            logger.exception("order sync failed", extra={"account_id": account.pk})
            errors.append(f"{account.account_name}: order sync failed: {exc}")
    _fail_if(errors)
    return {"accounts": len(ctx.synced_account_ids)}


def place_protective_legs(state: CycleState) -> dict:
    ctx = _ctx(state)
    errors = []
    # Every account's candidates in one read (the cycle holds each account's exclusion),
    # with the accounts where one has a shortfall recorded (what of its position the broker
    # did not hold when an exit path measured it).
    candidates, short = order_services.brackets_to_protect_and_short(
        [account.pk for account in ctx.accounts]
    )
    for account in ctx.accounts:
        try:
            snapshot = ctx.snapshots[account.pk]
            if account.pk in short and snapshot.positions is not None:
                # Lowered where the broker holds more now (a buy back in its terminal):
                # protected again below, in this cycle. Never raised here, nor lowered from
                # positions read before the position's legs last changed.
                lower_shortfalls(
                    account=account,
                    positions=snapshot.positions,
                    read_at=snapshot.read_at,
                    actor=ACTOR,
                )
            order_services.place_protective_legs(
                account=account, candidates=candidates.get(account.pk, [])
            )
        except Exception as exc:
            logger.exception("protective legs failed", extra={"account_id": account.pk})
            errors.append(f"{account.account_name}: placing SL/TP failed: {exc}")
    _fail_if(errors)
    return {}


# ---- steps 5-6 ----------------------------------------------------------------------------


class StopLimitLeg(NamedTuple):
    """A working stop leg (STOPLIMIT; or STOPMARKET: no limit, so never re-priced, but
    trailed) as steps 5 and 6 read it: the leg's own prices, its order's instrument and tick
    size, its strategy's slippage bound and trailing settings (None without a strategy).
    Plain values from one compiled read; no model instances."""

    id: int
    account_id: int
    role: str
    side: str
    status: str
    stop_price: Decimal | None
    limit_price: Decimal | None
    unique_identifier: str
    trail_reference_price: Decimal | None
    instrument_id: int | None
    tick_size: Decimal | None
    strategy_id: int | None
    max_slippage_pct: Decimal | None
    trailing_sl_enabled: bool | None
    trailing_sl_trigger: Decimal | None
    trailing_sl_step: Decimal | None


# StopLimitLeg's columns, in its order: the leg's own fields by their names, the others
# through the leg's order.
_THROUGH_ORDER = {
    "instrument_id": "order__instrument_id",
    "tick_size": "order__instrument__tick_size",
    "strategy_id": "order__strategy_id",
    "max_slippage_pct": "order__strategy__max_slippage_pct",
    "trailing_sl_enabled": "order__strategy__trailing_sl_enabled",
    "trailing_sl_trigger": "order__strategy__trailing_sl_trigger",
    "trailing_sl_step": "order__strategy__trailing_sl_step",
}
_STOP_LIMIT_COLUMNS = tuple(_THROUGH_ORDER.get(name, name) for name in StopLimitLeg._fields)


def _stop_limit_query(
    *, account_ids: list[int], roles: list[str], ids: list[int] | None = None
) -> QuerySet[OrderLeg, tuple[Any, ...]]:
    legs = OrderLeg.objects.filter(
        account_id__in=account_ids,
        role__in=roles,
        # Stop-market legs too: they carry no limit to re-price, but a stop-loss of either
        # kind trails (step 6).
        order_type__in=(OrderType.STOPLIMIT, OrderType.STOPMARKET),
        status__in=UNFILLED,
        order__archived_at=None,
    )
    if ids is not None:
        legs = legs.filter(pk__in=ids)
    return legs.order_by("id").values_list(*_STOP_LIMIT_COLUMNS)


# Read by every user's every cycle: compiled once per shape (with `ids` or without).
_STOP_LIMIT_LEGS = PreparedRows(StopLimitLeg, _stop_limit_query)


def _stop_limit_legs(
    ctx: CycleContext, roles: list[str], ids: list[int] | None = None
) -> list[StopLimitLeg]:
    named = {} if ids is None else {"ids": ids}
    return _STOP_LIMIT_LEGS(
        account_ids=[account.pk for account in ctx.accounts], roles=roles, **named
    )


def _fair_prices(legs: list[StopLimitLeg]) -> dict[int, FairPrice]:
    ids = {leg.instrument_id for leg in legs if leg.instrument_id is not None}
    if not ids:
        return {}
    return {fp.instrument_id: fp for fp in FairPrice.objects.filter(instrument_id__in=ids)}


def _slippage(leg: StopLimitLeg) -> Decimal:
    # None only without a strategy (the column is not nullable).
    if leg.max_slippage_pct is None:
        return repricing.DEFAULT_MAX_SLIPPAGE_PCT
    return leg.max_slippage_pct


def _new_limits(
    legs: list[StopLimitLeg],
    fairs: dict[int, FairPrice],
    anchors: dict[int, Decimal] | None = None,
) -> list[tuple[StopLimitLeg, Decimal]]:
    """The stuck legs and their new limits; `anchors`: the limits the slippage bound of legs
    re-priced before is measured from (`orders.selectors.repricing_anchors`)."""
    anchors = anchors or {}
    moves = []
    for leg in legs:
        fair = fairs.get(leg.instrument_id) if leg.instrument_id is not None else None
        if fair is None or leg.tick_size is None:  # no instrument, or no price for it
            continue
        new_limit = repricing.repriced_limit(
            side=leg.side,
            stop_price=leg.stop_price,
            limit_price=leg.limit_price,
            buy_fair=fair.buy_fair_price,
            sell_fair=fair.sell_fair_price,
            max_slippage_pct=_slippage(leg),
            tick_size=leg.tick_size,
            anchor_price=anchors.get(leg.id),
        )
        if new_limit is not None:
            moves.append((leg, new_limit))
    return moves


def _reprice_stuck(
    legs: list[StopLimitLeg], fairs: dict[int, FairPrice], *, anchored: bool = False
) -> tuple[list[int], list[str]]:
    """Re-price the stuck legs. `anchored`: the bound of a leg re-priced before holds from
    its limit before the first re-pricing, not afresh each cycle (read only for the legs
    that would move: a bound from the anchor never moves a leg further than from its limit)."""
    moves = _new_limits(legs, fairs)
    if anchored and moves:
        anchors = repricing_anchors([leg.id for leg, _limit in moves])
        if anchors:
            moves = _new_limits([leg for leg, _limit in moves], fairs, anchors)
    repriced, errors = [], []
    for leg, new_limit in moves:
        try:
            changed = order_services.reprice_leg(
                leg_id=leg.id, account_id=leg.account_id, new_limit_price=new_limit, actor=ACTOR
            )
            if changed.limit_price != leg.limit_price:  # the service may hold it back
                repriced.append(leg.id)
        except Exception as exc:
            errors.append(f"re-pricing {leg.role} leg {leg.unique_identifier} failed: {exc}")
    return repriced, errors


def reprice_entry_legs(state: CycleState) -> dict:
    ctx = _ctx(state)
    both = _stop_limit_legs(ctx, [OrderLeg.Role.ENTRY, OrderLeg.Role.STOP_LOSS])
    legs = [leg for leg in both if leg.role == OrderLeg.Role.ENTRY]
    ctx.stop_loss_legs = [leg for leg in both if leg.role == OrderLeg.Role.STOP_LOSS]
    # An entry's bound holds from the trader's limit, not afresh each cycle: otherwise the
    # limit ran one more bound up (or down) every minute the market stayed away.
    repriced, errors = _reprice_stuck(legs, _fair_prices(both), anchored=True)
    _fail_if(errors)
    return {"repriced": len(repriced)}


def _trail(leg: StopLimitLeg, fair: FairPrice) -> tuple[bool, str | None]:
    """Move one stop-loss leg per its strategy's trailing settings: (moved, error)."""

    trigger, step = leg.trailing_sl_trigger, leg.trailing_sl_step
    # The settings are None only without a strategy (the columns are not nullable).
    if not leg.trailing_sl_enabled or trigger is None or step is None:
        return False, None
    if leg.status != OrderLeg.Status.OPEN:
        return False, None
    price = fair.sell_fair_price if leg.side == repricing.SELL else fair.buy_fair_price
    if price is None or leg.stop_price is None:
        return False, None
    reference = leg.trail_reference_price
    if reference is None:
        # The first sight of this leg sets the reference; moves start from here.
        OrderLeg.objects.filter(pk=leg.id).update(trail_reference_price=price)
        return False, None
    move = repricing.trailing_move(
        sl_side=leg.side,
        reference_price=reference,
        stop_price=leg.stop_price,
        limit_price=leg.limit_price,
        fair_price=price,
        trigger=trigger,
        step=step,
        tick_size=leg.tick_size or Decimal(0),
    )
    if move is None:
        return False, None
    try:
        order_services.reprice_leg(
            leg_id=leg.id,
            account_id=leg.account_id,
            new_limit_price=move.limit_price,
            new_stop_price=move.stop_price,
            actor=ACTOR,
        )
    except Exception as exc:
        return False, f"trailing stop-loss leg {leg.unique_identifier} failed: {exc}"
    OrderLeg.objects.filter(pk=leg.id).update(trail_reference_price=move.reference_price)
    return True, None


def reprice_stop_loss_legs(state: CycleState) -> dict:
    ctx = _ctx(state)
    legs = ctx.stop_loss_legs
    if legs is None:  # step 5 did not run
        legs = _stop_limit_legs(ctx, [OrderLeg.Role.STOP_LOSS])
    fairs = _fair_prices(legs)
    # A stop-loss's bound holds from its limit before the desk first re-priced it (moved
    # by the trails since), as an entry's does: measured afresh from the limit the cycle
    # before had moved, a stuck stop-loss's limit ran one more bound every cycle.
    repriced, errors = _reprice_stuck(legs, fairs, anchored=True)
    trailed = 0
    to_trail = [leg.id for leg in legs if leg.id not in repriced and leg.instrument_id in fairs]
    # What the trailing reads is re-read after the re-pricing above, in one query for all
    # of them (with their orders' strategies), not one per leg.
    fresh = _stop_limit_legs(ctx, [OrderLeg.Role.STOP_LOSS], ids=to_trail) if to_trail else []
    for leg in fresh:
        assert leg.instrument_id is not None  # as read for `to_trail`
        moved, error = _trail(leg, fairs[leg.instrument_id])
        if error:
            errors.append(error)
        trailed += moved
    _fail_if(errors)
    return {"repriced": len(repriced), "trailed": trailed}


# ---- steps 7-10 ---------------------------------------------------------------------------


def archive_rejected_orders(state: CycleState) -> dict:
    return {"archived": len(regeneration.archive_rejected_orders(user_id=_ctx(state).user_id))}


def stage_regenerations(state: CycleState) -> dict:
    ctx = _ctx(state)
    return {
        "staged": len(
            regeneration.stage_regenerations(user_id=ctx.user_id, cycle_key=ctx.cycle_key)
        )
    }


def place_regenerations(state: CycleState) -> dict:
    result = regeneration.place_regenerations(user_id=_ctx(state).user_id)
    _fail_if(result.errors)
    return {"placed": len(result.placed)}


def send_errors(state: CycleState) -> dict:
    ctx = _ctx(state)
    realtime.notify_user(
        ctx.user_id,
        {
            "type": realtime.MONITORING_ERRORS,
            "errors": list(state.errors),
            "timestamp": realtime.now_iso(),
            "cycle": ctx.cycle_key,
        },
    )
    return {"sent": len(state.errors)}


STEP_FUNCTIONS = {
    "fetch_broker_data": fetch_broker_data,
    "compute_pnl": compute_pnl,
    "sync_orders": sync_orders,
    "place_protective_legs": place_protective_legs,
    "reprice_entry_legs": reprice_entry_legs,
    "reprice_stop_loss_legs": reprice_stop_loss_legs,
    "archive_rejected_orders": archive_rejected_orders,
    "stage_regenerations": stage_regenerations,
    "place_regenerations": place_regenerations,
    "send_errors": send_errors,
}
