"""Running monitoring cycles: exactly once per user and cycle key (SPEC 8), never two of one
user at the same time, and never beside another change of the same account.

`run_user_cycle` is what the Celery task, the embedded timer and the admin action call.
Three guards:
- the user's cycle lease (`trading_site.core.leases`: Redis in the full stack, renewed by a
  heartbeat while the cycle runs, so a slow cycle keeps it however long it takes and a
  killed worker's lease lapses within `MONITOR_LOCK_TTL_SECONDS`): the next cycle of the
  same user skips while one runs;
- the unique `MonitoringRun(user, cycle_key)`, written (and committed) before any step
  runs, so a redelivered task or a second beat in the same slot finds the row and returns;
- each account's exclusion (`orders.services.exclusion`), held from step 1 to step 9, so
  a broker event, a trader's cancel or the kill switch acts before or after the cycle's
  work on that account, never in the middle of it.
A run left RUNNING by a worker that died is marked ABANDONED by the next cycle of the same
user (it holds the lease, so nobody else is running one) or by the housekeeping task.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import BrokerAccount, BrokerSession, User
from accounts.selectors import active_accounts_of
from monitoring import pipeline, presence
from monitoring.models import Heartbeat, MonitoringRun
from monitoring.pipeline import REGENERATION_PERMITTED, Outcome
from monitoring.steps import STEP_FUNCTIONS, CycleContext
from orders.brokers.sessions import connect_account
from orders.models import BrokerPosition, Order, OrderLeg
from orders.services.exclusion import accounts_exclusion
from orders.services.regeneration import regeneration_permitted
from trading_site.core import leases, market_hours, metrics, realtime
from trading_site.core.prepared import PreparedRows

logger = logging.getLogger(__name__)

# Orders whose derived figures a cycle may change (their pnl_update-worthy fields).
_LIVE_ORDER_STATUSES = (
    Order.Status.PENDING,
    Order.Status.OPEN,
    Order.Status.PARTIALLY_FILLED,
    Order.Status.FILLED,
)


class _Figures(NamedTuple):
    """An order's pnl_update-worthy figures."""

    id: int
    status: str
    pnl: Decimal | None
    open_position: int
    filled_quantity: int
    ltp: Decimal | None


def _live_orders() -> QuerySet[Order]:
    return Order.objects.filter(status__in=_LIVE_ORDER_STATUSES, archived_at=None)


# Read twice by every cycle and every broker event: compiled once (`PreparedRows`).
_FIGURES_OF_USER = PreparedRows(
    _Figures,
    lambda *, user_id: _live_orders().filter(user_id=user_id).values_list(*_Figures._fields),
)
_FIGURES_OF_ACCOUNT = PreparedRows(
    _Figures,
    lambda *, account_id: (
        _live_orders().filter(account_id=account_id).values_list(*_Figures._fields)
    ),
)
_FIGURES_OF_ORDERS = PreparedRows(
    _Figures, lambda *, ids: Order.objects.filter(pk__in=ids).values_list(*_Figures._fields)
)


class _RunId(NamedTuple):
    id: int


_RUNNING_RUNS_OF_USER = PreparedRows(
    _RunId,
    lambda *, user_id: MonitoringRun.objects.filter(
        status=MonitoringRun.Status.RUNNING, user_id=user_id
    ).values_list("pk"),
)


def cycle_key_for(at: datetime | None = None) -> str:
    """The interval slot `at` falls in, in Asia/Kolkata: '2026-11-26T10:31' for 60-second
    slots, with seconds ('...T10:31:30') when the interval is not a whole minute."""
    local = market_hours.market_now(at)
    interval = max(1, int(settings.MONITOR_INTERVAL_SECONDS))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    seconds = int((local - midnight).total_seconds()) // interval * interval
    slot = midnight + timedelta(seconds=seconds)
    if interval % 60 == 0:
        return slot.strftime("%Y-%m-%dT%H:%M")
    return slot.strftime("%Y-%m-%dT%H:%M:%S")


def cycle_lease_ttl() -> float:
    """How long a dead worker's cycle lease outlives it (a live one renews it every third)."""
    configured = getattr(settings, "MONITOR_LOCK_TTL_SECONDS", None)
    if configured:
        return float(configured)
    interval = int(settings.MONITOR_INTERVAL_SECONDS)
    return float(max(2, min(30, interval // 2)))


def cycle_lease_name(user_id: int) -> str:
    return f"monitoring:cycle:{int(user_id)}"


def order_figures(*, user_id: int | None = None, account_id: int | None = None) -> dict[int, tuple]:
    """The pnl_update-worthy figures of the user's (or account's) live orders, by order id."""
    if user_id is not None and account_id is None:
        rows = _FIGURES_OF_USER(user_id=user_id)
    elif account_id is not None and user_id is None:
        rows = _FIGURES_OF_ACCOUNT(account_id=account_id)
    else:
        raise TypeError("order_figures takes a user_id or an account_id")
    return {row[0]: row[1:] for row in rows}


def moved_figures_messages(before: dict[int, tuple]) -> list[dict]:
    """order_update for the orders whose figures moved without a status change (a status
    change was already announced by the order services)."""
    messages: list[dict] = []
    if not before:
        return messages
    for order_id, *figures in _FIGURES_OF_ORDERS(ids=list(before)):
        old = before[order_id]
        if tuple(figures) != old and figures[0] == old[0]:
            status, pnl, open_position, filled, ltp = figures
            messages.append(
                {
                    "type": realtime.ORDER_UPDATE,
                    "order_id": order_id,
                    "status": status,
                    "details": {
                        "pnl": pnl,
                        "open_position": open_position,
                        "filled_quantity": filled,
                        "ltp": ltp,
                    },
                }
            )
    return messages


def pnl_update_message(account: BrokerAccount) -> dict:
    return {
        "type": realtime.PNL_UPDATE,
        "account_id": account.pk,
        "realized": account.realized_mtm,
        "unrealized": account.unrealized_mtm,
        "total": account.total_mtm,
    }


def _push_after_cycle(
    *,
    user_id: int,
    run: MonitoringRun,
    result: pipeline.CycleResult,
    before: dict[int, tuple],
    accounts: list[BrokerAccount],
) -> None:
    """cycle_complete, then order_update for orders whose figures moved without a status
    change (status changes were already announced by the order services), then pnl_update
    per account when PnL was computed."""
    messages: list[dict] = [
        {
            "type": realtime.CYCLE_COMPLETE,
            "cycle": run.cycle_key,
            "status": run.status,
            "steps": run.steps,
            "duration_ms": run.duration_ms,
            "timestamp": realtime.now_iso(),
        }
    ]
    messages.extend(moved_figures_messages(before))
    if result.outcomes and result.outcome_of(2) == Outcome.OK:
        # The cycle's own account instances: step 2 wrote the new figures onto them (and
        # left them as read when nothing changed), so no second read is needed.
        messages.extend(pnl_update_message(account) for account in accounts)
    # One hand-over for the whole cycle (one event-loop hop in embedded mode), in this order.
    realtime.notify_users([(user_id, message) for message in messages])


def _record_metrics(elapsed: float, result: pipeline.CycleResult) -> None:
    try:
        metrics.observe("cycle_duration_seconds", elapsed)
        for outcome in result.outcomes:
            if outcome.outcome == Outcome.FAILED:
                metrics.inc("cycle_step_failures_total", step=outcome.name)
    except Exception:  # a metrics outage must not fail a recorded cycle
        logger.exception("cycle metrics failed")


def _claim_run(*, user_id: int, cycle_key: str, trigger: str) -> MonitoringRun | None:
    """The run's row, committed before any step runs; None when the (user, cycle) row is
    there already (or the user is gone). One INSERT in autocommit; a savepoint only inside
    a caller's transaction, which a refused INSERT must not break."""
    run = MonitoringRun(user_id=user_id, cycle_key=cycle_key, trigger=trigger[:16])
    try:
        if transaction.get_connection().in_atomic_block:
            with transaction.atomic():
                run.save(force_insert=True)
        else:
            run.save(force_insert=True)
    except IntegrityError:
        return None
    return run


def run_user_cycle(*, user_id: int, cycle_key: str, trigger: str) -> MonitoringRun | None:
    """Run the user's cycle for `cycle_key` unless it ran (or is running) already. Returns
    the finished run, or None when this call did not run it."""
    try:
        lease = leases.acquire(cycle_lease_name(user_id), ttl=cycle_lease_ttl())
    except leases.LeaseBusy:
        logger.info(
            "cycle skipped: user's previous cycle is still running",
            extra={"user_id": user_id, "cycle": cycle_key},
        )
        try:  # the saturation signal: cycles outlast the interval
            metrics.inc("cycles_skipped_total")
        except Exception:
            logger.debug("cycles_skipped_total not recorded", exc_info=True)
        return None
    try:
        # Holding the lease, no other cycle of this user runs: a RUNNING run is a dead one.
        abandon_dead_runs(user_id=user_id)
        run = _claim_run(user_id=user_id, cycle_key=cycle_key, trigger=trigger)
        if run is None:
            return None
        return _execute(run)
    finally:
        leases.release(lease)


def cycle_batches(user_ids: list[int]) -> list[list[int]]:
    """The users in batches of `MONITOR_USERS_PER_TASK`, in order: one cycle task each. A
    task costs its queueing, delivery and acknowledgement whatever it runs (about as much
    as a user's cycle with nothing to do), so a batch shares it; the batches stay small so
    the workers still share the slot evenly."""
    size = max(1, int(settings.MONITOR_USERS_PER_TASK))
    return [list(user_ids[start : start + size]) for start in range(0, len(user_ids), size)]


def run_user_cycles(*, user_ids: list[int], cycle_key: str, trigger: str) -> list[MonitoringRun]:
    """`run_user_cycle` for each user in turn. One user's failure (the database gone for a
    moment, the user deleted since the dispatch) is logged and the next user's cycle runs:
    a batch never leaves the others without their cycle. Returns the runs that ran."""
    runs = []
    for user_id in user_ids:
        try:
            run = run_user_cycle(user_id=user_id, cycle_key=cycle_key, trigger=trigger)
        except Exception:
            logger.exception("cycle failed", extra={"user_id": user_id, "cycle": cycle_key})
            continue
        if run is not None:
            runs.append(run)
    return runs


def _run_steps(context: CycleContext, user_id: int) -> pipeline.CycleResult:
    """Steps 1-10 with every account's exclusion held (those not free in time are left out
    of this cycle, reported as an error: the next cycle takes them)."""
    with accounts_exclusion(
        [account.pk for account in context.accounts], purpose="monitoring cycle"
    ) as (_held, busy):
        skipped = [account for account in context.accounts if account.pk in busy]
        context.accounts = [account for account in context.accounts if account.pk not in busy]
        result = pipeline.run_cycle(
            STEP_FUNCTIONS,
            context=context,
            flags={REGENERATION_PERMITTED: lambda: regeneration_permitted(user_id=user_id)},
        )
    if skipped:
        result.errors.extend(
            f"{account.account_name}: busy with another change; left to the next cycle"
            for account in skipped
        )
        if result.status == pipeline.CycleStatus.OK:
            result.status = pipeline.CycleStatus.ERRORS
    return result


def _execute(run: MonitoringRun) -> MonitoringRun:
    started = time.perf_counter()
    user_id = run.user_id
    accounts = active_accounts_of(user_id=user_id)
    context = CycleContext(user_id=user_id, cycle_key=run.cycle_key, accounts=accounts)
    before = order_figures(user_id=user_id)
    try:
        result = _run_steps(context, user_id)
    except Exception as exc:  # the executor itself never raises; belt and braces for the run row
        logger.exception("cycle crashed", extra={"user_id": user_id})
        result = pipeline.CycleResult(
            outcomes=[],
            errors=[f"cycle crashed: {exc}"],
            status=pipeline.CycleStatus.FAILED,
            duration_ms=0,
        )
    elapsed = time.perf_counter() - started
    run.steps = [o.as_dict() for o in result.outcomes]
    run.errors = result.errors
    run.status = str(result.status)
    run.finished_at = timezone.now()
    run.duration_ms = int(elapsed * 1000)
    run.save(update_fields=["steps", "errors", "status", "finished_at", "duration_ms"])
    _record_metrics(elapsed, result)
    try:
        _push_after_cycle(
            user_id=user_id, run=run, result=result, before=before, accounts=context.accounts
        )
    except Exception:  # notifications never undo a recorded cycle
        logger.exception("cycle notifications failed", extra={"user_id": user_id})
    return run


# ---- abandoned runs ---------------------------------------------------------------------------

ABANDONED_MESSAGE = (
    "abandoned: the worker running this cycle stopped before it finished (its lease "
    "lapsed); the next cycle re-read everything from the broker"
)


def abandon_dead_runs(*, user_id: int | None = None) -> int:
    """Mark ABANDONED the RUNNING runs whose worker died. With `user_id` the caller holds
    that user's cycle lease, so every RUNNING run of the user is dead; without it (the
    housekeeping task) a run is dead when nobody holds its user's lease and it started more
    than a lease's lifetime ago. Returns how many were marked."""
    running = MonitoringRun.objects.filter(status=MonitoringRun.Status.RUNNING)
    if user_id is not None:
        dead = [run.id for run in _RUNNING_RUNS_OF_USER(user_id=user_id)]
    else:
        cutoff = timezone.now() - timedelta(seconds=cycle_lease_ttl())
        candidates = running.filter(started_at__lt=cutoff).values_list("pk", "user_id")
        dead = [pk for pk, owner in candidates if not leases.is_held(cycle_lease_name(owner))]
    if not dead:
        return 0
    now = timezone.now()
    marked = 0
    for run in MonitoringRun.objects.filter(pk__in=dead, status=MonitoringRun.Status.RUNNING):
        updated = MonitoringRun.objects.filter(
            pk=run.pk, status=MonitoringRun.Status.RUNNING
        ).update(
            status=MonitoringRun.Status.ABANDONED,
            finished_at=now,
            errors=[*run.errors, ABANDONED_MESSAGE],
        )
        if updated:
            marked += 1
            logger.warning(
                "cycle run abandoned",
                extra={"user_id": run.user_id, "cycle": run.cycle_key, "run_id": run.pk},
            )
    return marked


# ---- who is monitored ---------------------------------------------------------------------


def users_with_open_orders() -> set[int]:
    """Users with an active account holding open orders (or legs) or an open position."""
    open_orders = Order.objects.filter(
        account__is_active=True, archived_at=None, status__in=_LIVE_ORDER_STATUSES
    ).values_list("user_id", flat=True)
    open_legs = OrderLeg.objects.filter(
        account__is_active=True, status__in=OrderLeg.OPEN_STATUSES
    ).values_list("account__user_id", flat=True)

    positions = (
        BrokerPosition.objects.filter(account__is_active=True)
        .exclude(net_qty=0)
        .values_list("account__user_id", flat=True)
    )
    return set(open_orders.distinct()) | set(open_legs.distinct()) | set(positions.distinct())


def monitored_user_ids() -> list[int]:
    """Connected users, and (MONITOR_OPEN_ORDER_USERS) users with open orders or positions,
    among active users with at least one active account."""

    candidates = set(presence.connected_user_ids())
    if settings.MONITOR_OPEN_ORDER_USERS:
        candidates |= users_with_open_orders()
    if not candidates:
        return []
    return sorted(
        User.objects.filter(pk__in=candidates, is_active=True, broker_accounts__is_active=True)
        .values_list("pk", flat=True)
        .distinct()
    )


def record_heartbeat(*, name: str = "beat") -> Heartbeat:
    heartbeat, _ = Heartbeat.objects.update_or_create(
        name=name, defaults={"beat_at": timezone.now()}
    )
    return heartbeat


def refresh_expiring_broker_sessions() -> int:
    """Log in again, ahead of time, every active account whose broker session expires before
    the next refresh run (every 5 minutes) plus the refresh margin; returns how many."""

    margin = getattr(settings, "BROKER_SESSION_REFRESH_MARGIN_SECONDS", 300)
    horizon = timezone.now() + timedelta(seconds=margin + 300)
    expiring = BrokerSession.objects.filter(
        account__is_active=True, expires_at__lte=horizon
    ).select_related("account")
    refreshed = 0
    for session in expiring:
        try:
            connect_account(session.account)
            refreshed += 1
        except Exception:  # one broker down must not stop the others' refresh
            logger.exception(
                "broker session refresh failed", extra={"account_id": session.account_id}
            )
    return refreshed
