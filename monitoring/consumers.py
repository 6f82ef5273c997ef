"""The WebSocket at /ws/<user_id>/ (SPEC 9): authenticate, join the user's group, forward.

Close codes:
- 4401: not authenticated (no session cookie, no valid token);
- 4403: authenticated, but the path names another user, or the credential is an API key
  bound to one broker account (no data byte is sent first);
- 4000: the trading window is closed; a `market_closed` message with the next opening is
  sent first, and the connection is closed the same way when the window closes later;
- 4429: the user already has WS_MAX_CONNECTIONS_PER_USER connections open (counted across
  every web process through presence); closed right after the handshake, no data sent;
- 1009: a frame larger than WS_MAX_MESSAGE_BYTES. daphne started through trading_site.server
  (start_embedded, serve_web) refuses it at the protocol level with 1009; this consumer checks
  again for servers that do not, and where the server will not send 1009 from an application
  (a bare `daphne` process) it closes with 4009 instead;
- 1008: frames faster than the connection's token bucket allows (WS_INBOUND_BURST at once,
  WS_INBOUND_MESSAGES_PER_SECOND sustained); 4008 where the server will not send 1008 from an
  application (a bare `daphne`).

The consumer never runs a cycle: the monitoring loop (monitoring.tasks) does, and its
messages arrive through the channel layer as `forward` events.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from monitoring import presence, ws_revalidation
from monitoring.ws_auth import identify
from trading_site.core import market_hours, metrics, realtime, safe_json
from trading_site.core.api.ratelimit import TokenBucket
from trading_site.core.per_loop import PerLoop

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_MARKET_CLOSED = 4000
CLOSE_TOO_BIG = 1009
CLOSE_TOO_BIG_PRIVATE = 4009
CLOSE_TOO_FAST = 1008
CLOSE_TOO_FAST_PRIVATE = 4008
CLOSE_TOO_MANY_CONNECTIONS = 4429
_UNKNOWN = object()
# Events whose handlers use no database connection (see UserUpdatesConsumer.dispatch).
_NO_DATABASE_EVENTS = frozenset({realtime.FORWARD_EVENT, "websocket.receive"})


def _count_connection(delta: int) -> None:
    """The open-connection gauge, summed over every web process (metrics live in Redis)."""

    metrics.add_gauge("websocket_connections", delta)


class UserUpdatesConsumer(AsyncWebsocketConsumer):
    connection_id: str = ""
    user_id: int | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inbound = TokenBucket(
            capacity=settings.WS_INBOUND_BURST,
            refill_per_second=settings.WS_INBOUND_MESSAGES_PER_SECOND,
        )
        # Set once this consumer has asked for a close: frames still queued behind it are
        # dropped, not answered (nor counted toward another close).
        self.closing = False

    async def connect(self):
        identity = await identify(self.scope)
        path_user = int(self.scope["url_route"]["kwargs"]["user_id"])
        # Accept first: a close before accept becomes an HTTP 403 and the client would never
        # see the 44xx code that tells it why.
        await self.accept(subprotocol=identity.subprotocol)
        if identity.user_id is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if identity.forbidden or identity.user_id != path_user:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        if not await market_hours.ais_trading_window_open():
            await self._send_market_closed_and_close()
            return
        connection_id = str(uuid.uuid4())
        limit = settings.WS_MAX_CONNECTIONS_PER_USER
        claim = functools.partial(presence.claim_connection, limit=limit)
        if not await _run_sync(claim, identity.user_id, connection_id):
            logger.warning(
                "websocket refused: connections per user at the limit",
                extra={"user_id": identity.user_id, "limit": limit},
            )
            await self.close(code=CLOSE_TOO_MANY_CONNECTIONS)
            return
        # From here on disconnect() gives the claimed slot back.
        self.user_id = identity.user_id
        self.connection_id = connection_id
        async with _layer_gate.get():
            await self.channel_layer.group_add(realtime.user_group(self.user_id), self.channel_name)
        await self._send_json(
            {
                "type": realtime.CONNECTION_ESTABLISHED,
                "connection_id": self.connection_id,
                "user_id": self.user_id,
                "timestamp": realtime.now_iso(),
            }
        )
        _keep_alive.get().add(self)
        ws_revalidation.watch(self, identity.credential)
        await _run_sync(_count_connection, 1)

    async def disconnect(self, code):
        _keep_alive.get().discard(self)
        ws_revalidation.forget(self)
        if self.user_id is None:
            return
        try:
            async with _layer_gate.get():
                await self.channel_layer.group_discard(
                    realtime.user_group(self.user_id), self.channel_name
                )
            await _run_sync(presence.mark_disconnected, self.user_id, self.connection_id)
            await _run_sync(_count_connection, -1)
        except Exception:  # the socket is gone either way; group entries expire on their own
            logger.warning("websocket cleanup failed", extra={"user_id": self.user_id})

    async def receive(self, text_data=None, bytes_data=None):
        if self.closing:
            return
        if not self.inbound.take():
            logger.warning(
                "websocket closed: frames faster than the inbound limit",
                extra={
                    "user_id": self.user_id,
                    "burst": self.inbound.capacity,
                    "per_second": self.inbound.refill_per_second,
                },
            )
            await self._close_with(CLOSE_TOO_FAST, private_code=CLOSE_TOO_FAST_PRIVATE)
            return
        raw = text_data.encode("utf-8") if text_data is not None else (bytes_data or b"")
        if len(raw) > settings.WS_MAX_MESSAGE_BYTES:
            await self._close_with(CLOSE_TOO_BIG, private_code=CLOSE_TOO_BIG_PRIVATE)
            return
        if self.user_id is None:
            return
        try:
            message = safe_json.loads(raw)
        except safe_json.JsonTooDeep as exc:
            await self._send_error(str(exc))
            return
        except (ValueError, UnicodeDecodeError):
            await self._send_error("malformed JSON")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self._send_error("a message is a JSON object with a string 'type'")
            return
        if message["type"] == "ping":
            await self._touch_presence()
            await self._send_json({"type": realtime.PONG, "timestamp": realtime.now_iso()})
            return
        await self._send_error(f"unknown message type: {message['type'][:50]}")

    async def dispatch(self, message):
        """Group messages and client frames skip channels' per-message database clean-up:
        neither touches the database, and that clean-up is a hop through the one shared
        sync thread per message, which made a broadcast to thousands of connections wait in
        line for it (bench/ws.py). Connects and disconnects keep it."""
        if message["type"] in _NO_DATABASE_EVENTS:
            await getattr(self, get_handler_name(message))(message)
            return
        await super().dispatch(message)

    async def forward(self, event):
        """A message for this user from the channel layer (trading_site.core.realtime): its JSON
        text as the notifier serialized it (once for all of the user's tabs), or the message
        encoded here when a sender gave only the message."""
        text = event.get("text")
        await self.send(text_data=text if text is not None else json.dumps(event["message"]))

    # ---- helpers ----------------------------------------------------------------------

    async def _send_json(self, message: dict) -> None:
        await self.send(text_data=json.dumps(message))

    async def _send_error(self, error: str) -> None:
        await self._send_json(
            {"type": realtime.ERROR, "error": error, "timestamp": realtime.now_iso()}
        )

    async def _close_with(self, code: int, *, private_code: int) -> None:
        """Close with a protocol code (1008, 1009), or `private_code` where the server refuses
        one from an application: a bare daphne (autobahn) lets it send only 1000 and
        3000-4999, while trading_site.server's protocol sends these as well."""
        self.closing = True
        try:
            await self.close(code=code)
        except Exception:
            await self.close(code=private_code)

    async def _send_market_closed_and_close(self, opening=_UNKNOWN) -> None:
        if opening is _UNKNOWN:
            opening = await market_hours.anext_opening()
        await self._send_json(
            {
                "type": realtime.MARKET_CLOSED,
                "next_opening": opening.isoformat() if opening else None,
                "timestamp": realtime.now_iso(),
            }
        )
        await self.close(code=CLOSE_MARKET_CLOSED)

    async def _touch_presence(self) -> None:
        await _run_sync(presence.mark_connected, self.user_id, self.connection_id)


class _ProcessKeepAlive:
    """This process's open connections, kept alive by ONE task (not one per connection):
    every PRESENCE_TTL_SECONDS / 3 it refreshes all of their presence entries in one batched
    write, and closes them all (market_closed first) once the trading window closes. At
    10,000 connections the per-connection version made ~333 Redis writes a second through
    worker threads, competing with message delivery (bench/ws.py). A crashed process stops
    refreshing, so its entries still expire after the TTL."""

    def __init__(self) -> None:
        self.consumers: dict[UserUpdatesConsumer, None] = {}  # an insertion-ordered set
        self.task: asyncio.Task | None = None
        self.ticking = False

    def add(self, consumer: UserUpdatesConsumer) -> None:
        self.consumers[consumer] = None
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    def discard(self, consumer: UserUpdatesConsumer) -> None:
        self.consumers.pop(consumer, None)
        if not self.consumers and self.task is not None and not self.ticking:
            # Nothing left to keep alive: no task outlives the last connection (a tick in
            # progress ends the loop by itself once it finds no connection left).
            self.task.cancel()
            self.task = None

    async def _run(self) -> None:
        period = max(1.0, settings.PRESENCE_TTL_SECONDS / 3)
        while self.consumers:
            await asyncio.sleep(period)
            self.ticking = True
            try:
                await self.tick()
            except Exception:
                logger.exception("presence refresh failed", extra={"connections": len(self)})
            finally:
                self.ticking = False

    def __len__(self) -> int:
        return len(self.consumers)

    async def tick(self) -> None:
        entries = [(c.user_id, c.connection_id) for c in self.consumers]
        if entries:
            await _run_sync(presence.refresh_connections, entries)
        if not self.consumers or await market_hours.ais_trading_window_open(cached=True):
            return
        closing = list(self.consumers)
        self.consumers.clear()
        # One next-opening lookup for all of them, not one per connection.
        opening = await market_hours.anext_opening()
        results = await asyncio.gather(
            *(c._send_market_closed_and_close(opening) for c in closing), return_exceptions=True
        )
        failed = sum(isinstance(r, Exception) for r in results)
        if failed:
            logger.warning("market_closed close failed", extra={"connections": failed})


_keep_alive: PerLoop[_ProcessKeepAlive] = PerLoop(_ProcessKeepAlive)


def _new_layer_gate() -> asyncio.Semaphore:
    """Bounds this process's concurrent group_add/discard calls below the channel layer's
    connection pool (redis-py refuses, rather than queues, past it): a burst of thousands of
    connects or disconnects then waits its turn instead of crashing consumers."""
    return asyncio.Semaphore(settings.WS_LAYER_CONCURRENCY)


_layer_gate: PerLoop[asyncio.Semaphore] = PerLoop(_new_layer_gate)


async def _run_sync(func, *args):
    from asgiref.sync import sync_to_async

    return await sync_to_async(func, thread_sensitive=False)(*args)
