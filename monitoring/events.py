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
   changed only) and `pnl_update`, plus order_update for orders whose PnL moved.
Applying the same event twice, events out of order, or an event after the cycle already
applied the same news changes nothing the second time: the lifecycle takes cumulative
fills, protection plans from the legs as they are (so it never sends a leg or a cancel
twice), trades are stored once by execution id.

`resync_account` is monitoring steps 1-4 for one account (fetch, PnL, legs, protection),
exactly as the cycle runs them, under the same exclusion: what a stream calls on every
(re)connect to fill the gap it may have missed.
"""

from __future__ import annotations

import logging

from accounts.models import BrokerAccount
from monitoring import pipeline
from monitoring.pipeline import Outcome
from monitoring.services import moved_figures_messages, order_figures, pnl_update_message
from monitoring.steps import STEP_FUNCTIONS, CycleContext
from orders.brokers.events import BrokerEvent, BrokerEventKind
from orders.services.events import EVENT_ACTOR, apply_broker_event
from orders.services.exclusion import account_exclusion, default_wait
from orders.services.protection import protect_orders
from pnl.services import compute_account_pnl
from trading_site.core import realtime

logger = logging.getLogger("monitoring.events")

# The kinds that change legs, fills or positions; CONNECTED and LOGOUT are the stream
# side's (it calls resync_account on a connect, and re-logs in on a logout).
_APPLIED_KINDS = (BrokerEventKind.ORDER, BrokerEventKind.TRADE, BrokerEventKind.POSITION)

# Steps 1-4 of the matrix: fetch, PnL, order sync, protection.
RESYNC_MATRIX = tuple(spec for spec in pipeline.MATRIX if spec.number <= 4)


def _active_account(account_id: int) -> BrokerAccount | None:
    return BrokerAccount.objects.filter(pk=account_id, is_active=True).first()


def _wait() -> float:
    # An event is worth waiting for a slow cycle's account work to finish.
    return 2 * default_wait()


def handle_broker_event(event: BrokerEvent) -> None:
    """Act on one broker event at once (see the module docstring). Raises AccountBusy when
    the account's exclusion stayed busy (the next cycle reconciles the event then)."""
    if event.kind not in _APPLIED_KINDS:
        return
    account = _active_account(event.account_id)
    if account is None:
        logger.info(
            "broker event for an unknown or inactive account ignored",
            extra={"account_id": event.account_id},
        )
        return
    with account_exclusion(account.pk, purpose=f"broker event {event.kind}", wait=_wait()):
        before = order_figures(account_id=account.pk)
        effect = apply_broker_event(account=account, event=event)
        errors: list[str] = []
        if effect.order_ids:
            protection = protect_orders(
                account_id=account.pk, order_ids=effect.order_ids, actor=EVENT_ACTOR
            )
            errors.extend(protection.errors)
        messages: list[dict] = []
        if effect.fills_changed:
            try:
                compute_account_pnl(account=account)
                messages.append(pnl_update_message(account))
            except Exception as exc:  # the cycle computes it again; the leg work stands
                logger.exception(
                    "PnL after a broker event failed", extra={"account_id": account.pk}
                )
                errors.append(f"PnL failed: {exc}")
        messages.extend(moved_figures_messages(before))
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
