"""Acting on broker events within a second: the handler the event streams call.

The streams (the XTS interactive stream per broker session, the paper exchange as it matches)
resolve these two functions by dotted path from settings (`BROKER_EVENT_HANDLER`,
`BROKER_RESYNC_HANDLER`). They live here, at the top of the apps, because handling an event
needs the orders app (legs, protection) and the pnl app (FIFO) together.

`handle_broker_event`, under the account's exclusion (the one the cycle, the trader's changes
and the kill switch take, so they act one after the other):
1. the row is stored and applied to its leg through the leg lifecycle, with its audit row
   and order_update (`orders.services.events`);
2. at once, for the order it moved: protective legs for newly filled quantity and
   one-cancels-other (`orders.services.protection.protect_orders`);
3. when fills changed: the account's FIFO PnL (re-matched for the instruments whose fills
   changed only) and `pnl_update`, plus order_update for orders whose PnL moved;
4. when a position row came: the account's positions valued now and `positions_update`
   (the positions page re-renders a row whose quantity moved; pnl.intraday).
Steps 1-2 are what cannot wait (`act_on_broker_events`), 3-4 what can wait for the end of
the account's burst (`finish_broker_events`): the dispatcher runs them apart (its `act` and
`finish`), so that in a burst of fills every account's protection comes before anyone's
PnL, and an account's PnL is computed once per burst. Called directly, `handle_broker_event`
does both before it returns.
Applying the same event twice, events out of order, or an event after the cycle already
applied the same news changes nothing the second time: the lifecycle takes cumulative
fills, protection plans from the legs as they are (so it never sends a leg or a cancel
twice), trades are stored once by execution id.

A run of one account's queued events (what the dispatcher hands over when events queued up
behind a running handler) is applied in one pass under one exclusion (stored together, its
legs locked together, each event applied in turn), then steps 2-4 run once for the whole
run.

`resync_account` is monitoring steps 1-4 for one account (fetch, PnL, legs, protection),
exactly as the cycle runs them, under the same exclusion: what a stream calls on every
(re)connect to fill the gap it may have missed.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

from accounts.models import BrokerAccount
from accounts.selectors import active_account
from monitoring import pipeline
from monitoring.pipeline import Outcome
from monitoring.services import moved_figures_messages, order_figures, pnl_update_message
from monitoring.steps import STEP_FUNCTIONS, CycleContext
from orders.brokers.events import BrokerEvent, BrokerEventKind
from orders.services.events import EVENT_ACTOR, apply_broker_events
from orders.services.exclusion import account_exclusion, default_wait
from orders.services.protection import protect_orders
from pnl.intraday import record_cycle_samples
from pnl.services import compute_account_pnl
from trading_site.core import realtime
from trading_site.core.errors import Busy

logger = logging.getLogger("monitoring.events")

# The kinds that change legs, fills or positions; CONNECTED and LOGOUT are the stream
# side's (it calls resync_account on a connect; on a logout it marks the session replaced
# and waits for the next login: orders.brokers.xts.stream).
_APPLIED_KINDS = (BrokerEventKind.ORDER, BrokerEventKind.TRADE, BrokerEventKind.POSITION)

# Steps 1-4 of the matrix: fetch, PnL, order sync, protection.
RESYNC_MATRIX = tuple(spec for spec in pipeline.MATRIX if spec.number <= 4)


def _active_account(account_id: int) -> BrokerAccount | None:
    return active_account(account_id=account_id)


def _wait() -> float:
    # An event is worth waiting for a slow cycle's account work to finish.
    return 2 * default_wait()


# What a run leaves for after the account's burst of events (`finish_broker_events`).
PNL, POSITIONS = "pnl", "positions"


def handle_broker_events(events: Sequence[BrokerEvent]) -> None:
    """Act on a run of one account's broker events at once, in order (see the module
    docstring): each is applied, then protection, the PnL and the notifications run once for
    all of them. One event is a run of one. Raises AccountBusy when the account's exclusion
    stayed busy (the dispatcher retries; the next cycle reconciles otherwise)."""
    for account_id, left in act_on_broker_events(events).items():
        finish_broker_events(account_id, left)


def act_on_broker_events(events: Sequence[BrokerEvent]) -> dict[int, frozenset[str]]:
    """Steps 1-2 for a run (the events applied, protection and one-cancels-other, the
    order_updates): what cannot wait. Returns, per account, what is left for
    `finish_broker_events` (PNL when fills changed, POSITIONS when a position row came),
    which the dispatcher runs once the account's burst of events is over, at a lower
    priority than other accounts' protection."""
    applied = [event for event in events if event.kind in _APPLIED_KINDS]
    left = {}
    for account_id in dict.fromkeys(event.account_id for event in applied):
        left[account_id] = _act_on_account_events(
            account_id, [e for e in applied if e.account_id == account_id]
        )
    return {account_id: work for account_id, work in left.items() if work}


def _act_on_account_events(account_id: int, events: list[BrokerEvent]) -> frozenset[str]:
    account = _active_account(account_id)
    if account is None:
        logger.info(
            "broker event for an unknown or inactive account ignored",
            extra={"account_id": account_id},
        )
        return frozenset()
    kinds = ",".join(sorted({str(event.kind) for event in events}))
    errors: list[str] = []
    with account_exclusion(account.pk, purpose=f"broker event {kinds}", wait=_wait()):
        effect = apply_broker_events(account=account, events=events)
        if effect.orders:
            protection = protect_orders(account=account, orders=effect.orders, actor=EVENT_ACTOR)
            errors.extend(protection.errors)
    _tell_errors(account, errors, "broker event handled with errors")
    left = {PNL} if effect.fills_changed else set()
    if effect.positions_changed:
        left.add(POSITIONS)
    return frozenset(left)


def finish_broker_events(account_id: int, left: Collection[str]) -> None:
    """Steps 3-4 after a run (or a burst of runs) of the account's events: its FIFO PnL,
    re-matched for the instruments whose fills changed, with `pnl_update` and order_update
    for the orders whose PnL moved (PNL); its positions valued now and `positions_update`
    (POSITIONS). Under the account's exclusion; a failure is logged and told, not raised
    (the cycle computes it again), except Busy (the exclusion, or a PnL rolled back by a
    lock conflict: RowsBusy), which the dispatcher tries again."""
    account = _active_account(account_id)
    if account is None or not left:
        return
    messages: list[dict] = []
    errors: list[str] = []
    if PNL in left:
        with account_exclusion(account.pk, purpose="PnL after broker events", wait=_wait()):
            before = order_figures(account_id=account.pk)
            try:
                compute_account_pnl(account=account)
                messages.append(pnl_update_message(account))
            except Busy:
                # Rolled back by a lock conflict (RowsBusy): nothing written; raised so the
                # dispatcher computes it again after a pause, as for a busy account.
                raise
            except Exception as exc:  # the cycle computes it again; the leg work stands
                logger.exception(
                    "PnL after a broker event failed", extra={"account_id": account.pk}
                )
                errors.append(f"PnL failed: {exc}")
            messages.extend(moved_figures_messages(before))
    if POSITIONS in left:
        record_cycle_samples([account])  # never raises: the next cycle pushes them anyway
    realtime.notify_users([(account.user_id, message) for message in messages])
    _tell_errors(account, errors, "PnL after broker events failed")


class _EventHandler:
    """`handle_broker_event(event)`: one broker event (a run of one), everything done before
    it returns. For the dispatcher, `act` and `finish` split a run's urgent part from what
    can wait for the end of the account's burst (see `act_on_broker_events`)."""

    act = staticmethod(act_on_broker_events)
    finish = staticmethod(finish_broker_events)

    def __call__(self, event: BrokerEvent) -> None:
        handle_broker_events([event])


handle_broker_event = _EventHandler()


def _tell_errors(account: BrokerAccount, errors: list[str], what: str) -> None:
    if not errors:
        return
    logger.warning("%s: %s", what, "; ".join(errors), extra={"account_id": account.pk})
    message = {
        "type": realtime.MONITORING_ERRORS,
        "errors": [f"{account.account_name}: {error}" for error in errors],
        "timestamp": realtime.now_iso(),
        "cycle": "event",
    }
    realtime.notify_users([(account.user_id, message)])


def resync_account(account_id: int, *, reason: str) -> None:
    """Monitoring steps 1-4 for one account, under its exclusion (see the module docstring).
    Problems are logged and told to the trader, not raised: the next cycle is the net."""
    account = _active_account(account_id)
    if account is None:
        return
    context = CycleContext(
        user_id=account.user_id, cycle_key=f"resync:{reason}"[:32], accounts=[account]
    )
    with account_exclusion(account.pk, purpose=f"resync ({reason})", wait=_wait()):
        before = order_figures(account_id=account.pk)
        result = pipeline.run_cycle(STEP_FUNCTIONS, context=context, matrix=RESYNC_MATRIX)
        messages = moved_figures_messages(before)
    if result.outcome_of(2) == Outcome.OK:
        messages.append(pnl_update_message(account))
    if result.errors:
        logger.warning(
            "resync of account %s (%s) had errors: %s",
            account.pk,
            reason,
            "; ".join(result.errors),
            extra={"account_id": account.pk},
        )
        messages.append(
            {
                "type": realtime.MONITORING_ERRORS,
                "errors": list(result.errors),
                "timestamp": realtime.now_iso(),
                "cycle": context.cycle_key,
            }
        )
    realtime.notify_users([(account.user_id, message) for message in messages])
