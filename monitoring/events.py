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
Applying the same event twice, events out of order, or an event after the cycle already
applied the same news changes nothing the second time: the lifecycle takes cumulative
fills, protection plans from the legs as they are (so it never sends a leg or a cancel
twice), trades are stored once by execution id.

A run of one account's queued events (`handle_broker_events`, what the dispatcher hands over
when events queued up behind a running handler) is applied event by event under one
exclusion, then steps 2-4 run once for the whole run.

`resync_account` is monitoring steps 1-4 for one account (fetch, PnL, legs, protection),
exactly as the cycle runs them, under the same exclusion: what a stream calls on every
(re)connect to fill the gap it may have missed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from accounts.models import BrokerAccount
from monitoring import pipeline
from monitoring.pipeline import Outcome
from monitoring.services import moved_figures_messages, order_figures, pnl_update_message
from monitoring.steps import STEP_FUNCTIONS, CycleContext
from orders.brokers.events import BrokerEvent, BrokerEventKind
from orders.services.events import EVENT_ACTOR, apply_broker_event
from orders.services.exclusion import account_exclusion, default_wait
from orders.services.protection import protect_orders
from pnl.intraday import record_cycle_samples
from pnl.services import compute_account_pnl
from trading_site.core import realtime

logger = logging.getLogger("monitoring.events")

# The kinds that change legs, fills or positions; CONNECTED and LOGOUT are the stream
# side's (it calls resync_account on a connect; on a logout it marks the session replaced
# and waits for the next login: orders.brokers.xts.stream).
_APPLIED_KINDS = (BrokerEventKind.ORDER, BrokerEventKind.TRADE, BrokerEventKind.POSITION)

# Steps 1-4 of the matrix: fetch, PnL, order sync, protection.
RESYNC_MATRIX = tuple(spec for spec in pipeline.MATRIX if spec.number <= 4)


def _active_account(account_id: int) -> BrokerAccount | None:
    return BrokerAccount.objects.filter(pk=account_id, is_active=True).first()


def _wait() -> float:
    # An event is worth waiting for a slow cycle's account work to finish.
    return 2 * default_wait()


def handle_broker_events(events: Sequence[BrokerEvent]) -> None:
    """Act on a run of one account's broker events at once, in order (see the module
    docstring): each is applied, then protection, the PnL and the notifications run once for
    all of them. The dispatcher hands a run when events queued up behind a busy handler (a
    burst of fills); one event is a run of one. Raises AccountBusy when the account's
    exclusion stayed busy (the dispatcher retries; the next cycle reconciles otherwise)."""
    applied = [event for event in events if event.kind in _APPLIED_KINDS]
    for account_id in dict.fromkeys(event.account_id for event in applied):
        _handle_account_events(account_id, [e for e in applied if e.account_id == account_id])


class _EventHandler:
    """`handle_broker_event(event)`: one broker event (a run of one). Its `many` takes a run
    of one account's queued events at once (the dispatcher uses it when a handler offers
    it)."""

    many = staticmethod(handle_broker_events)

    def __call__(self, event: BrokerEvent) -> None:
        handle_broker_events([event])


handle_broker_event = _EventHandler()


def _handle_account_events(account_id: int, events: list[BrokerEvent]) -> None:
    account = _active_account(account_id)
    if account is None:
        logger.info(
            "broker event for an unknown or inactive account ignored",
            extra={"account_id": account_id},
        )
        return
    kinds = ",".join(sorted({str(event.kind) for event in events}))
    with account_exclusion(account.pk, purpose=f"broker event {kinds}", wait=_wait()):
        before = order_figures(account_id=account.pk)
        order_ids: list[int] = []
        fills_changed = positions_changed = False
        for event in events:
            effect = apply_broker_event(account=account, event=event)
            order_ids.extend(i for i in effect.order_ids if i not in order_ids)
            fills_changed = fills_changed or effect.fills_changed
            positions_changed = positions_changed or effect.positions_changed
        errors: list[str] = []
        if order_ids:
            protection = protect_orders(
                account_id=account.pk, order_ids=order_ids, actor=EVENT_ACTOR
            )
            errors.extend(protection.errors)
        messages: list[dict] = []
        if fills_changed:
            try:
                compute_account_pnl(account=account)
                messages.append(pnl_update_message(account))
            except Exception as exc:  # the cycle computes it again; the leg work stands
                logger.exception(
                    "PnL after a broker event failed", extra={"account_id": account.pk}
                )
                errors.append(f"PnL failed: {exc}")
        messages.extend(moved_figures_messages(before))
    if positions_changed:
        record_cycle_samples([account])  # never raises: the next cycle pushes them anyway
    if errors:
        logger.warning(
            "broker event handled with errors: %s",
            "; ".join(errors),
            extra={"account_id": account.pk},
        )
        messages.append(
            {
                "type": realtime.MONITORING_ERRORS,
                "errors": [f"{account.account_name}: {error}" for error in errors],
                "timestamp": realtime.now_iso(),
                "cycle": "event",
            }
        )
    realtime.notify_users([(account.user_id, message) for message in messages])


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
