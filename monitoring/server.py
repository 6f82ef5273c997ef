"""daphne serving trading_site.asgi with this product's WebSocket limits.

Used by `manage.py start_embedded` (with the in-process loop) and `manage.py serve_web` (the
full stack's web process). Frames over WS_MAX_MESSAGE_BYTES are refused by the protocol
layer itself, with a proper close frame carrying 1009 (autobahn's default would drop the TCP
connection without one, which the client sees as 1006).
"""

from __future__ import annotations

from collections.abc import Callable


def build_server(*, host: str, port: int, on_ready: Callable[[object], None] | None = None):
    # daphne.server installs Twisted's asyncio reactor on import: import it before Twisted.
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server
    from django.conf import settings

    from trading_site.asgi import application

    limit = int(settings.WS_MAX_MESSAGE_BYTES)
    server: Server

    def ready():
        server.ws_factory.setProtocolOptions(failByDrop=False)
        if on_ready is not None:
            on_ready(server)

    server = Server(
        application=application,
        endpoints=build_endpoint_description_strings(host=host, port=port),
        websocket_max_message_size=limit,
        websocket_max_frame_size=limit,
        ready_callable=ready,
    )
    return server
