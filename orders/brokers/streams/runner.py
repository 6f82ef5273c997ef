"""Building and starting the stream supervisor in its two shapes.

- `start_in_process(loop)`: the embedded default. The supervisor runs in the server's own
  event loop (daphne's), with local leases (one process) and the paper exchange's events
  handed over in memory; the handler runs in threads whose `async_to_sync` calls hop back
  onto that loop, where the in-memory channel layer delivers.
- `build_supervisor(in_process=False)`: each `manage.py run_broker_streams` process, with Redis leases
  and the paper events' Redis Streams.

Both resolve the handler and the resync first and refuse to start when they do not import.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from orders.brokers.paper import events as paper_events
from orders.brokers.streams.dispatch import Dispatcher, resolve_handlers
from orders.brokers.streams.leases import LocalLeases, RedisLeases
from orders.brokers.streams.supervisor import StreamSupervisor

logger = logging.getLogger(__name__)


def build_supervisor(
    *, in_process: bool, capacity: int | None = None, threads: int | None = None
) -> StreamSupervisor:
    handlers = resolve_handlers()
    mode = paper_events.transport()
    if in_process:
        # One process, but with Redis at hand its leases (and the paper cursors they fence)
        # still live there: a restart resumes where it stopped, and a second process that
        # runs streams too cannot double them.
        client = None
        leases: RedisLeases | LocalLeases | None = None
        if settings.REDIS_URL:
            client = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
            leases = RedisLeases()
        leases = leases or LocalLeases()
    else:
        if not settings.REDIS_URL:
            raise ImproperlyConfigured(
                "run_broker_streams shares the streams between processes through Redis: set "
                "REDIS_URL (the embedded default runs its streams inside the server instead)"
            )
        if mode == paper_events.MEMORY:
            raise ImproperlyConfigured(
                "PAPER_EVENTS_TRANSPORT=memory delivers within one process only; use redis"
            )
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
        leases = RedisLeases()
    return StreamSupervisor(
        leases=leases,
        dispatcher=Dispatcher(handlers, threads=threads),
        paper_mode=mode,
        redis=client,
        capacity=capacity,
    )


def start_in_process(loop: asyncio.AbstractEventLoop | None = None) -> StreamSupervisor:
    """Start the streams on `loop` (the server's; by default the running one)."""
    loop = loop or asyncio.get_event_loop()
    supervisor = build_supervisor(in_process=True)
    supervisor.task = loop.create_task(supervisor.run(), name="broker-streams")
    logger.info("broker streams running in process")
    return supervisor
