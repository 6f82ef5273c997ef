"""The full stack's web process: daphne serving HTTP and WebSockets (trading_site.server)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from trading_site.server import build_server


class Command(BaseCommand):
    help = "Serve trading_site.asgi with daphne (HTTP + WebSocket), WebSocket limits applied."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, host: str, port: int, **options):
        def ready(server):
            self.stdout.write(f"serving on http://{host}:{port}/")
            self.stdout.flush()

        build_server(host=host, port=port, on_ready=ready).run()
