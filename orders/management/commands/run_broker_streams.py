"""manage.py run_broker_streams: the full stack's broker event streams (`make streams`).

Run one or more (on one machine or many): they share the XTS sessions and the paper event
partitions through leases in Redis, exactly one stream per broker session at any moment,
and take over a dead process's streams within seconds (orders.brokers.streams.supervisor).
SIGTERM or SIGINT stops the streams and releases their leases at once.
"""

from __future__ import annotations

import asyncio
import signal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from orders.brokers.streams.runner import build_supervisor
from trading_site.core.db_router import keep_connections


class Command(BaseCommand):
    help = "Run the broker event streams (XTS interactive streams, paper exchange events)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--capacity",
            type=int,
            default=None,
            help="most streams this process runs (default BROKER_STREAMS_CAPACITY)",
        )

    def handle(self, *args, capacity: int | None, **options):
        # A fixed set of handler threads: each keeps its connection between events (a
        # connection per event cost about a tenth of the handler's time).
        keep_connections(settings.WORKER_DB_CONN_MAX_AGE)
        try:
            supervisor = build_supervisor(in_process=False, capacity=capacity)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"broker streams: process {supervisor.leases.owner}, capacity {supervisor.capacity}"
        )
        self.stdout.flush()
        asyncio.run(self._serve(supervisor))

    @staticmethod
    async def _serve(supervisor) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await supervisor.run(stop)
