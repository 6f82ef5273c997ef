"""`make run`: the embedded default (SPEC 2) in one process, no services needed.

Migrates, seeds the demo user, account, instruments and prices, then serves
trading_site.asgi with daphne and runs the monitoring loop, the simulated price feed and
scheduled orders on timers inside daphne's event loop.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from monitoring.embedded import start_broker_streams, start_embedded_jobs
from orders.brokers.streams.dispatch import resolve_handlers
from orders.market.demo import seed_demo_data
from trading_site.server import build_server


class Command(BaseCommand):
    help = "Run the embedded trading desk: web, WebSocket and the monitoring loop in one process."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-loop", action="store_true", help="serve only; no timers")
        parser.add_argument(
            "--no-streams", action="store_true", help="no broker event streams in this process"
        )

    def handle(self, *args, host: str, port: int, no_loop: bool, no_streams: bool, **options):
        streams = settings.BROKER_STREAMS_IN_PROCESS and not no_streams
        if streams:
            try:
                resolve_handlers()  # refuse to start rather than drop every broker event
            except ImproperlyConfigured as exc:
                raise CommandError(str(exc)) from exc
        call_command("migrate", interactive=False, verbosity=0)

        demo = seed_demo_data()

        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        url = f"http://{shown_host}:{port}/"

        def ready(server):
            if not no_loop:
                start_embedded_jobs()
            if streams:
                start_broker_streams()
            self.stdout.write(
                f"Trading desk running at {url}\n"
                f"Demo login: username {demo.username!r}, password {demo.password!r}\n"
                f"Monitoring every {settings.MONITOR_INTERVAL_SECONDS}s "
                f"({'in-process loop' if not no_loop else 'loop off'}); broker event streams "
                f"{'in process' if streams else 'off'}; Ctrl-C to stop."
            )
            self.stdout.flush()

        build_server(host=host, port=port, on_ready=ready).run()
