"""Celery entry points (beat schedule: trading_site.celery). Thin: ids in, a service call.

The embedded runner calls these same functions from its in-process timer.
"""

from __future__ import annotations

import logging

from celery import shared_task

from accounts.services import purge_expired_auth_sessions as purge
from monitoring.services import (
    abandon_dead_runs,
    cycle_batches,
    cycle_key_for,
    monitored_user_ids,
    record_heartbeat,
    refresh_expiring_broker_sessions,
    run_user_cycle,
    run_user_cycles,
)
from orders.alerts.services import purge_old_received_alerts as purge_alerts
from orders.scheduled.services import place_due_scheduled_orders as place_due
from trading_site.core.market_hours import is_trading_window_open

logger = logging.getLogger(__name__)


@shared_task(name="monitoring.tasks.dispatch_monitoring_cycles", ignore_result=True)
def dispatch_monitoring_cycles(trigger: str = "beat") -> int:
    """The current slot's cycle of every monitored user, inside the trading window only:
    one `run_monitoring_cycles` task per batch of users. Returns how many users."""

    if not is_trading_window_open():
        return 0
    cycle_key = cycle_key_for()
    user_ids = monitored_user_ids()
    queue_cycles(user_ids, cycle_key, trigger)
    logger.info("cycles dispatched", extra={"cycle": cycle_key, "users": len(user_ids)})
    return len(user_ids)


def queue_cycles(user_ids: list[int], cycle_key: str, trigger: str) -> int:
    """One `run_monitoring_cycles` task per batch of users (`cycle_batches`). Returns how
    many tasks were queued."""
    batches = cycle_batches(user_ids)
    for batch in batches:
        run_monitoring_cycles.delay(batch, cycle_key, trigger)
    return len(batches)


@shared_task(name="monitoring.tasks.run_monitoring_cycles", ignore_result=True)
def run_monitoring_cycles(user_ids: list[int], cycle_key: str, trigger: str = "beat") -> int:
    """Each user's cycle in turn; idempotent per user (a redelivered batch runs only the
    cycles that did not run). Returns how many ran."""

    return len(run_user_cycles(user_ids=user_ids, cycle_key=cycle_key, trigger=trigger))


@shared_task(name="monitoring.tasks.run_monitoring_cycle", ignore_result=True)
def run_monitoring_cycle(user_id: int, cycle_key: str, trigger: str = "beat") -> int | None:
    """One user's cycle (the admin's "run now"). Idempotent: a second delivery for the same
    (user, cycle) returns without running."""

    run = run_user_cycle(user_id=user_id, cycle_key=cycle_key, trigger=trigger)
    return run.pk if run else None


@shared_task(name="monitoring.tasks.place_due_scheduled_orders", ignore_result=True)
def place_due_scheduled_orders() -> int:
    return len(place_due())


@shared_task(name="monitoring.tasks.beat_heartbeat", ignore_result=True)
def beat_heartbeat() -> None:
    record_heartbeat(name="beat")


@shared_task(name="monitoring.tasks.purge_expired_auth_sessions", ignore_result=True)
def purge_expired_auth_sessions() -> int:
    return purge()


@shared_task(name="monitoring.tasks.purge_old_received_alerts", ignore_result=True)
def purge_old_received_alerts() -> int:
    return purge_alerts()


@shared_task(name="monitoring.tasks.refresh_broker_sessions", ignore_result=True)
def refresh_broker_sessions() -> int:
    return refresh_expiring_broker_sessions()


@shared_task(name="monitoring.tasks.mark_abandoned_runs", ignore_result=True)
def mark_abandoned_runs() -> int:
    """Runs whose worker died (nobody holds their user's cycle lease) become ABANDONED, also
    for users no longer monitored (their next cycle would have marked them)."""
    return abandon_dead_runs()
