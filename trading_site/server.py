"""daphne serving trading_site.asgi with this product's WebSocket limits.

Used by `manage.py start_embedded` (with the in-process loop) and `manage.py serve_web` (the
full stack's web process). Frames over WS_MAX_MESSAGE_BYTES are refused by the protocol
layer itself, with a proper close frame carrying 1009 (autobahn's default would drop the TCP
connection without one, which the client sees as 1006). The application may close with the
protocol codes 1008 and 1009 (a bare daphne allows it only 1000 and 3000-4999), and a
protocol-level ping flood, which autobahn would answer pong by pong without the application
ever seeing it, is closed with 1008 past the same inbound limit as messages
(WS_INBOUND_BURST, WS_INBOUND_MESSAGES_PER_SECOND; monitoring.consumers counts messages).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from trading_site.core.api.ratelimit import TokenBucket
from trading_site.core.exposure import warn_if_exposed
from trading_site.core.gc_tuning import tune_for_server

logger = logging.getLogger(__name__)

# Close codes the application may send although autobahn's sendClose refuses them from one:
# 1008 policy violation (frames too fast), 1009 message too big.
APPLICATION_PROTOCOL_CLOSE_CODES = frozenset({1008, 1009})
CLOSE_POLICY_VIOLATION = 1008


def build_server(*, host: str, port: int, on_ready: Callable[[object], None] | None = None):
    # daphne.server installs Twisted's asyncio reactor on import: import it before Twisted.
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server
    from django.conf import settings

    from trading_site.asgi import application  # reason: after daphne installed its reactor

    warn_if_exposed(host)
    limit = int(settings.WS_MAX_MESSAGE_BYTES)
    server: Server

    def ready():
        tune_for_server()
        server.ws_factory.setProtocolOptions(failByDrop=False)
        # Read per connection by buildProtocol, so every WebSocket from now on uses it.
        server.ws_factory.protocol = _limited_protocol(
            _direct_write_protocol(),
            burst=int(settings.WS_INBOUND_BURST),
            per_second=float(settings.WS_INBOUND_MESSAGES_PER_SECOND),
        )
        if on_ready is not None:
            on_ready(server)

    server = Server(
        application=application,
        endpoints=build_endpoint_description_strings(host=host, port=port),
        websocket_max_message_size=limit,
        websocket_max_frame_size=limit,
        ready_callable=ready,
    )
    profile_path = settings.WEB_PROFILE_FILE
    if profile_path:
        server.run = _profiled(server.run, profile_path)
    return server


def _direct_write_protocol():
    """daphne's WebSocket protocol, sending a frame straight to the socket when nothing is
    queued ahead of it. Twisted's transport.write only buffers and registers the socket for
    writing (an epoll change), writes when the reactor next sees it writable and unregisters it
    (another epoll change); autobahn's sendData also formats a debug log line per frame whether
    or not debug logging is on. For a broadcast to 10,000 connections those were most of the
    event loop's time per message (bench/ws.py, profiled). Anything unusual (TLS, a backlog,
    a closing or lost connection, a partial write) takes the ordinary path."""
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet import tcp

    class DirectWriteWebSocketProtocol(WebSocketProtocol):
        def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
            transport = self.transport
            if (
                not chopsize
                and not sync
                and not self.send_queue
                and not self.logOctets
                and isinstance(transport, tcp.Connection)
                and not transport.TLS
                and transport.connected
                and not transport.disconnecting
                and not transport._writeDisconnected
                and not transport.dataBuffer
                and not transport._tempDataBuffer
            ):
                sent = transport.writeSomeData(data)
                if isinstance(sent, int) and sent > 0:
                    if self.state == WebSocketProtocol.STATE_OPEN:
                        self.trafficStats.outgoingOctetsWireLevel += sent
                    if sent == len(data):
                        return
                    data = data[sent:]
            super().sendData(data, sync, chopsize)

    return DirectWriteWebSocketProtocol


def _limited_protocol(base: type, *, burst: int, per_second: float) -> type:
    """`base` with the product's protocol-level close codes and ping limit (module docstring).
    Each connection has its own ping bucket, made at its first ping."""

    class LimitedWebSocketProtocol(base):
        ping_bucket: TokenBucket | None = None

        def serverClose(self, code: int | None = None) -> None:
            if code in APPLICATION_PROTOCOL_CLOSE_CODES:
                self.sendCloseFrame(code=code, isReply=False)
                return
            super().serverClose(code)

        def onPing(self, payload: bytes) -> None:
            if self.state != self.STATE_OPEN:
                return  # closing: no pong, and no second close
            if self.ping_bucket is None:
                self.ping_bucket = TokenBucket(capacity=burst, refill_per_second=per_second)
            if self.ping_bucket.take():
                super().onPing(payload)
                return
            logger.warning(
                "websocket closed: pings faster than the inbound limit",
                extra={"client": self.client_addr, "burst": burst, "per_second": per_second},
            )
            self.sendCloseFrame(code=CLOSE_POLICY_VIOLATION, isReply=False)

    return LimitedWebSocketProtocol


def _profiled(run: Callable[[], None], path: str) -> Callable[[], None]:
    """Performance work only (bench/ws.py; py-spy is not available on the bench machine):
    cProfile the event loop thread, in CPU time, between SIGUSR1 (start) and SIGUSR2 (stop), so
    a profile can cover just a broadcast. The stats are written to `path` (pstats format) on
    SIGUSR2 or when daphne stops. Off unless WEB_PROFILE_FILE is set."""

    def profiled_run() -> None:
        import cProfile
        import signal
        import time

        profiler = cProfile.Profile(time.thread_time)
        state = {"on": False}

        def start(*_):
            if not state["on"]:
                state["on"] = True
                profiler.enable()

        def stop(*_):
            if state["on"]:
                state["on"] = False
                profiler.disable()
                profiler.dump_stats(path)

        signal.signal(signal.SIGUSR1, start)
        signal.signal(signal.SIGUSR2, stop)
        try:
            run()
        finally:
            stop()

    return profiled_run
