"""The embedded default's loop (SPEC 2): the same task functions the Celery beat runs, called
by timers inside the ASGI server's own event loop.

Inside the loop, not beside it: the in-memory channel layer only delivers within one event
loop, so each job runs in a worker thread through `sync_to_async`, whose `async_to_sync`
calls (every WebSocket notification) hop back onto this loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings

from monitoring.tasks import (
    beat_heartbeat,
    dispatch_monitoring_cycles,
    mark_abandoned_runs,
    place_due_scheduled_orders,
    purge_expired_auth_sessions,
    purge_old_received_alerts,
    refresh_broker_sessions,
)
from orders.market.demo import tick_price_feed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    every_seconds: float
    function: Callable[[], object]


def _dispatch() -> object:
    return dispatch_monitoring_cycles(trigger="embedded")


def _price_feed() -> object:
    return tick_price_feed()


def _scheduled_orders() -> object:
    return place_due_scheduled_orders()


def _heartbeat() -> object:
    return beat_heartbeat()


def _mark_abandoned_runs() -> object:
    return mark_abandoned_runs()


def _purge_sessions() -> object:
    return purge_expired_auth_sessions()


def _purge_alerts() -> object:
    return purge_old_received_alerts()


def _refresh_broker_sessions() -> object:
    return refresh_broker_sessions()


def embedded_jobs() -> list[Job]:
    interval = float(settings.MONITOR_INTERVAL_SECONDS)
    jobs = [
        Job("monitoring-dispatch", interval, _dispatch),
        Job("scheduled-orders", min(60.0, interval), _scheduled_orders),
        Job("heartbeat", min(30.0, interval), _heartbeat),
        Job("refresh-broker-sessions", 300.0, _refresh_broker_sessions),
        Job("abandoned-runs", 60.0, _mark_abandoned_runs),
        Job("purge-auth-sessions", 3600.0, _purge_sessions),
        Job("purge-received-alerts", 6 * 3600.0, _purge_alerts),
    ]
    if settings.PRICE_FEED_ENABLED:
        jobs.append(Job("price-feed", float(settings.PRICE_FEED_INTERVAL_SECONDS), _price_feed))
    return jobs


async def _run_every(job: Job) -> None:
    """Run `job` every `every_seconds`, never two at once (a slow run delays the next)."""
    while True:
        started = time.monotonic()
        try:
            await sync_to_async(job.function, thread_sensitive=False)()
        except asyncio.CancelledError:
            raise
        except Exception:  # one failed run must not stop the timer
            logger.exception("embedded job failed", extra={"job": job.name})
        await asyncio.sleep(max(0.0, job.every_seconds - (time.monotonic() - started)))


def start_embedded_jobs(loop: asyncio.AbstractEventLoop | None = None) -> list[asyncio.Task]:
    """Start every job on `loop` (the server's, by default the current one)."""
    loop = loop or asyncio.get_event_loop()
    return [loop.create_task(_run_every(job), name=job.name) for job in embedded_jobs()]
