"""The XTS simulator's interactive event stream: Socket.IO v2 over Engine.IO 3 on an ASGI
WebSocket, at the path, query, event names and row formats of real XTS brokers.

`ws://host/interactive/socket.io/?token=<token>&userID=<userID>&apiType=INTERACTIVE&EIO=3&transport=websocket`
(what python-socketio 4.x sends for the official SDK's connect, and what our client sends).
The server sends the Engine.IO open packet (`0{"sid",...,"pingInterval","pingTimeout"}`),
then either `40` and a `joined` event, or, for a dead token or a userID that is not the
token's, `44"Invalid Token"` and closes (with the `stream_refusal` knob, a live token gets a
`44` of the knob's data and the close: a refusal for another reason). It answers the
client's pings `2` with `3` and closes a connection that sends nothing for pingInterval +
pingTimeout.

Events are `42["order","<order row as a JSON string>"]` and `42["trade","<trade row>"]`,
the very rows the REST order book, order history and trade book answer: every state an
order of the login's paper book(s) passes through (accepted, modified, partially filled,
filled, cancelled, rejected) is one `order` event, and each fill is also a `trade` event.
The paper exchange changes those orders in whichever process matches them (a price write,
a REST call), so a watcher polls the watched books for recently changed orders every
`poll_seconds` (and at once after this simulator's own order calls) and pushes the steps
not pushed yet. Steps older than the connection are not replayed: a client re-syncs over
REST on connect, as against a real broker.

A new login with the same appKey ends the previous token: its streams get `logout` and are
closed. Counters for tests: connections open per appKey and the most ever open at once, the
connects, refusals and events sent (`GET /_sim/stats`, "streams").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from django.utils import timezone

from orders.brokers.xts import socketio_v2 as sio

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Connection:
    send: Callable[[dict], Awaitable[None]]
    app_key: str
    token: str
    books: tuple[str, ...]
    sid: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    closed: bool = False
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def push(self, frame: str) -> bool:
        if self.closed:
            return False
        async with self._lock:
            try:
                await self.send({"type": "websocket.send", "text": frame})
                return True
            except Exception:  # the peer went away; the reader notices and unregisters
                self.closed = True
                return False

    async def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        self.closed = True
        async with self._lock:
            with contextlib.suppress(Exception):
                await self.send({"type": "websocket.close", "code": code})


# collect(watched books -> since) -> [(book name, event name, row)]; runs in a worker thread.
Collect = Callable[[dict[str, datetime]], list[tuple[str, str, dict[str, Any]]]]


class SimulatorStreams:
    def __init__(
        self,
        *,
        token_owner: Callable[[str], Any],
        books_of: Callable[[Any], tuple[str, ...]],
        collect: Collect,
        run_sync: Callable[..., Awaitable[Any]],
        refuse: Callable[[], bool],
        refusal: Callable[[], str] = lambda: "",
        ping_interval: float = 25.0,
        ping_timeout: float = 60.0,
        poll_seconds: float = 0.2,
    ):
        self._token_owner = token_owner
        self._books_of = books_of
        self._collect = collect
        self._run_sync = run_sync
        self._refuse = refuse
        self._refusal = refusal
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.poll_seconds = poll_seconds
        self._connections: set[_Connection] = set()
        self._since: dict[str, datetime] = {}
        self._wake: asyncio.Event | None = None
        self._watcher: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self.reset_stats()

    # ---- counters -----------------------------------------------------------------------------

    def reset_stats(self) -> None:
        self.connects = 0
        self.refused = 0
        self.events_sent: Counter[str] = Counter()
        self.max_open: Counter[str] = Counter(self._open_by_app_key())

    def _open_by_app_key(self) -> Counter[str]:
        return Counter(c.app_key for c in getattr(self, "_connections", ()) if not c.closed)

    def stats(self) -> dict[str, Any]:
        return {
            "open": dict(self._open_by_app_key()),
            "max_open": dict(self.max_open),
            "connects": self.connects,
            "refused": self.refused,
            "events_sent": dict(self.events_sent),
        }

    # ---- control from the simulator ---------------------------------------------------------

    def ended(self, tokens: list[str], reason: str) -> None:
        """These tokens died (a new login of their appKey, a logout): tell their streams
        `logout` and close them. Called on the server's event loop."""
        dead = set(tokens)
        for connection in list(self._connections):
            if connection.token in dead:
                self._spawn(self._logout(connection, reason))

    def nudge(self) -> None:
        """Look for changes now (after one of the simulator's own order calls)."""
        if self._wake is not None:
            self._wake.set()

    async def drop_all(self) -> int:
        """Close every stream without a goodbye (a broker restart, a network cut)."""
        connections = [c for c in self._connections if not c.closed]
        for connection in connections:
            await connection.close(code=1011)
        return len(connections)

    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _logout(self, connection: _Connection, reason: str) -> None:
        payload = json.dumps({"message": reason, "reason": "logout"})
        if await connection.push(sio.encode_event("logout", payload)):
            self.events_sent["logout"] += 1
        await connection.close()

    # ---- one connection ----------------------------------------------------------------------

    async def serve(self, scope, receive, send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        if query.get("EIO") != sio.ENGINE_IO_VERSION or query.get("transport") != "websocket":
            # Engine.IO 4 clients (python-socketio 5) and polling are not what XTS speaks.
            await send({"type": "websocket.close", "code": 1002})
            return
        if self._refuse():
            self.refused += 1
            await send({"type": "websocket.close", "code": 1013})  # the handshake fails (403)
            return
        await send({"type": "websocket.accept"})
        token = query.get("token", "")
        owner = self._token_owner(token) if token else None
        connection = _Connection(
            send=send,
            app_key=getattr(owner, "app_key", ""),
            token=token,
            books=self._books_of(owner) if owner is not None else (),
        )
        await connection.push(
            sio.encode_open(
                connection.sid, ping_interval=self.ping_interval, ping_timeout=self.ping_timeout
            )
        )
        if owner is None or query.get("userID") != owner.user_id:
            self.refused += 1
            await connection.push(sio.encode_error("Invalid Token"))
            await connection.close(code=1008)
            return
        refusal = self._refusal()
        if refusal:  # a refusal for another reason (the `stream_refusal` knob)
            self.refused += 1
            await connection.push(sio.encode_error(_json_or_text(refusal)))
            await connection.close(code=1008)
            return
        self._register(connection)
        try:
            await connection.push(sio.CONNECT_FRAME)
            joined = json.dumps({"userID": owner.user_id, "message": "Joined Successfully"})
            await connection.push(sio.encode_event("joined", joined))
            await self._read(connection, receive)
        finally:
            self._unregister(connection)
            await connection.close()

    async def _read(self, connection: _Connection, receive) -> None:
        silence = self.ping_interval + self.ping_timeout
        while not connection.closed:
            try:
                message = await asyncio.wait_for(receive(), timeout=silence)
            except TimeoutError:
                return  # the client stopped pinging
            if message["type"] == "websocket.disconnect":
                connection.closed = True
                return
            text = message.get("text")
            if text is None:
                continue
            if text.startswith(sio.EIO_PING):
                await connection.push(sio.EIO_PONG + text[1:])
            elif text in (sio.EIO_CLOSE, sio.DISCONNECT_FRAME):
                return

    def _register(self, connection: _Connection) -> None:
        self._connections.add(connection)
        self.connects += 1
        open_now = self._open_by_app_key()[connection.app_key]
        self.max_open[connection.app_key] = max(self.max_open[connection.app_key], open_now)
        now = timezone.now()
        for book in connection.books:
            self._since.setdefault(book, now)
        if self._watcher is None or self._watcher.done():
            self._wake = asyncio.Event()
            self._watcher = asyncio.ensure_future(self._watch())

    def _unregister(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        watched = {book for c in self._connections for book in c.books}
        for book in list(self._since):
            if book not in watched:
                del self._since[book]

    # ---- the book watcher --------------------------------------------------------------------

    async def _watch(self) -> None:
        while self._connections:
            assert self._wake is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            self._wake.clear()
            watched = dict(self._since)
            if not watched:
                continue
            try:
                changes = await self._run_sync(self._collect, watched)
            except Exception:
                logger.exception("simulator stream: reading the books failed")
                await asyncio.sleep(self.poll_seconds)
                continue
            by_book: dict[str, list[_Connection]] = defaultdict(list)
            for connection in self._connections:
                for book in connection.books:
                    by_book[book].append(connection)
            for book, event, row in changes:
                frame = sio.encode_event(event, json.dumps(row, default=str))
                for connection in by_book.get(book, ()):
                    if await connection.push(frame):
                        self.events_sent[event] += 1


def _json_or_text(value: str) -> Any:
    """A knob's JSON value, or the text itself when it is not JSON."""
    try:
        return json.loads(value)
    except ValueError:
        return value
