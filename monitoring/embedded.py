"""The embedded default's loop (SPEC 2): the same task functions the Celery beat runs, called
by timers inside the ASGI server's own event loop; and the broker event streams (the XTS
interactive streams and the paper exchange's events), in that same loop.

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
from orders.brokers.streams.runner import start_in_process
from orders.brokers.streams.supervisor import StreamSupervisor
from orders.market.demo import tick_price_feed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    every_seconds: float
    function: Callable[[], object]


def _dispatch() -> object:
    """Dispatch marked "embedded", so the runs it starts say where they came from."""
    return dispatch_monitoring_cycles(trigger="embedded")


def embedded_jobs() -> list[Job]:
    interval = float(settings.MONITOR_INTERVAL_SECONDS)
    jobs = [
        Job("monitoring-dispatch", interval, _dispatch),
        Job("scheduled-orders", min(60.0, interval), place_due_scheduled_orders),
        Job("heartbeat", min(30.0, interval), beat_heartbeat),
        Job("refresh-broker-sessions", 300.0, refresh_broker_sessions),
        Job("abandoned-runs", 60.0, mark_abandoned_runs),
        Job("purge-auth-sessions", 3600.0, purge_expired_auth_sessions),
        Job("purge-received-alerts", 6 * 3600.0, purge_old_received_alerts),
    ]
    if settings.PRICE_FEED_ENABLED:
        jobs.append(Job("price-feed", float(settings.PRICE_FEED_INTERVAL_SECONDS), tick_price_feed))
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


def start_broker_streams(loop: asyncio.AbstractEventLoop | None = None) -> StreamSupervisor | None:
    """Run the broker event streams on `loop` when BROKER_STREAMS_IN_PROCESS (the embedded
    default). Raises ImproperlyConfigured when the handler does not import: a server that
    would drop every event must not start."""
    if not settings.BROKER_STREAMS_IN_PROCESS:
        return None
    return start_in_process(loop or asyncio.get_event_loop())
