"""The XTS interactive event stream of one broker session: what the broker pushes the moment
an order changes, turned into BrokerEvents (orders.brokers.events).

The wire (shared/XTS.md "Limits and streams"): Socket.IO at the broker's root URL with
`socketio_path=/interactive/socket.io`, query `token=<token>&userID=<userID>&apiType=INTERACTIVE`,
WebSocket transport, events `joined`, `order` (an order-book row as a JSON string), `trade`
(a trade-book row), `position`, `tradeConversion`, `logout` (the session was replaced: one
session per appKey) and `error`. Real XTS servers speak Socket.IO v2 over Engine.IO 3 (the
official SDK pins python-socketio 4.6 / python-engineio 3.13).

Why our own client over `websockets` (orders.brokers.xts.socketio_v2 holds the framing):
- python-socketio 5.x speaks only Engine.IO 4 (the server pings, the client answers; a
  different handshake): it cannot talk to these servers at all;
- python-socketio 4.x does speak Engine.IO 3, but has been unmaintained since 2021 (4.6.1,
  no fixes since), pulls `six` and `websocket-client` (a thread per connection in its sync
  client), and its reconnection logic is its own (no hook for our resync, session renewal or
  lease fencing);
- the part of the protocol XTS uses is small: a handshake packet, the `40` namespace connect,
  `42[...]` events, client pings `2` answered by `3`, close `1`/`41`, error `44`. It fits in
  one short module over `websockets` (maintained, asyncio-native, already our dependency),
  and is proven against real sockets: against the simulator's stream
  (tests/orders/brokers/xts/test_stream.py), which python-socketio 4.6.1, the client of the
  official SDK, drives too (tests/orders/brokers/xts/test_simulator_stream.py).

Behaviour of `XtsStream` (one per broker session, run by orders.brokers.streams):
- connects with the token of the account's current session; the URL's host is judged by the
  broker-host policy (SSRF) and the connection pinned to the judged address;
- on every (re)connect (the `40` packet) it emits a CONNECTED event: the gap since the last
  connection is unknown, and the runner answers it with a REST sync of the account;
- reconnects after any failure with exponential backoff and full jitter, capped; the attempt
  count resets only after a connection stayed up `stable_after` seconds, so a server that
  accepts and drops at once cannot make us reconnect (and re-sync) in a tight loop;
- a `logout` event, or the server refusing the token (a `44` whose code is `e-session-*` /
  `e-token-*`, or that has no code and a message about the token, as `44"Invalid Token"`:
  xts.wire.stream_refused_token), means this session is dead at the broker: the stored
  session is marked invalid (only while it still holds this token: another process may
  have logged in since) and the stream WAITS for a fresh session. It
  never logs in itself: a logout means another login took the appKey, and a stream that
  logged in again would kill that login, which would log in again... A fresh session comes
  from the sessions module's one-login-at-a-time path (the next monitoring cycle's step 1,
  the ahead-of-expiry refresh, or the trader's Connect), and the runner hands it over with
  `update_session`, whereupon the stream reconnects with the new token;
- a `44` for any other reason (the user already connected, a server error, a rate limit) is
  a failure like a dropped connection: logged, and retried with the backoff; the stored
  session is kept (its token still serves REST, and a stream refused for a while is no
  reason to make the trader log in again);
- a renewed session (a new token) while connected closes the old connection and reconnects
  at once with the new token;
- the client pings every pingInterval and drops a connection whose pong is late by more
  than pingTimeout, or that sends nothing at all for pingInterval + pingTimeout;
- a dealer login's stream carries every client code's orders: rows of another client code
  than the account's are not this account's and are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import websockets
from asgiref.sync import sync_to_async
from websockets.exceptions import ConnectionClosed, WebSocketException

from orders.brokers.base import BrokerError, BrokerOrderRow, BrokerPositionRow, BrokerTradeRow
from orders.brokers.events import BrokerEvent, BrokerEventKind
from orders.brokers.host_policy import judged_address
from orders.brokers.sessions import mark_session_invalid
from orders.brokers.xts import socketio_v2 as sio
from orders.brokers.xts import wire as xts_wire
from trading_site.core import metrics

logger = logging.getLogger(__name__)

SOURCE = "xts-stream"
# The biggest frame we accept: one order row is about 1.5 KB.
MAX_FRAME_BYTES = 1 << 20


@dataclass(frozen=True)
class StreamSession:
    """What a stream needs of an account's broker session."""

    account_id: int
    base_url: str
    token: str
    user_id: str
    is_investor_client: bool = True
    client_id: str = ""  # a dealer session's client code
    identity: str = ""  # changes with every new login (the stored session's created_at)


class StreamStatus(enum.StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    WAITING = "waiting-for-session"  # the broker ended the session; a new login is needed
    STOPPED = "stopped"


@dataclass
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniformly in
    [0, min(cap, base * 2**n)] (spreads reconnects of many streams after a broker outage)."""

    base: float = 0.5
    cap: float = 30.0
    rng: random.Random | None = None

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 32)))
        return (self.rng or random).uniform(0.0, ceiling)


class SessionEnded(Exception):
    """The broker refused this session's token or replaced the session (logout)."""


class StreamDead(Exception):
    """The connection stopped answering (no pong, nothing at all) or broke the protocol."""


class StreamRefused(Exception):
    """The broker refused the stream (`44`) for another reason than the token: transient."""


def _refusal(data: object) -> Exception:
    """What a `44` carrying `data` means: the session's end only when it refuses the token."""
    message = f"the broker refused the stream: {_text(data)}"
    return SessionEnded(message) if xts_wire.stream_refused_token(data) else StreamRefused(message)


EventSink = Callable[[BrokerEvent], Awaitable[None]]
StatusSink = Callable[["XtsStream", StreamStatus, str], None]
SessionEndedSink = Callable[[StreamSession, str], Awaitable[None]]


async def mark_stream_session_ended(session: StreamSession, reason: str) -> None:
    """The default reaction to a logout or a refused token: the stored session is invalid,
    unless another login has replaced its token meanwhile (sessions.mark_session_invalid)."""
    await sync_to_async(mark_session_invalid, thread_sensitive=False)(
        account_id=session.account_id, reason=reason, token=session.token
    )


def _now() -> datetime:
    return datetime.now(tz=UTC)


class XtsStream:
    def __init__(
        self,
        session: StreamSession,
        *,
        on_event: EventSink,
        on_status: StatusSink | None = None,
        on_session_ended: SessionEndedSink = mark_stream_session_ended,
        backoff: Backoff | None = None,
        stable_after: float = 30.0,
        open_timeout: float = 10.0,
    ):
        self.account_id = session.account_id
        self._session: StreamSession | None = session
        self._ended: set[str] = set()  # tokens the broker refused or replaced
        self._on_event = on_event
        self._on_status = on_status
        self._on_session_ended = on_session_ended
        self.backoff = backoff or Backoff()
        self.stable_after = stable_after
        self.open_timeout = open_timeout
        self.status = StreamStatus.CONNECTING
        self.status_since = _now()
        self.detail = ""
        self.reconnects = 0
        self.connects = 0
        self.last_event_at: datetime | None = None
        self.delays: list[float] = []  # every backoff wait, in order (health and tests)
        self._wakeup = asyncio.Event()
        self._closing: set[asyncio.Future] = set()
        self._stopping = False
        self._websocket: websockets.ClientConnection | None = None
        self._renewed = False

    # ---- control (from the runner) --------------------------------------------------------

    @property
    def session(self) -> StreamSession | None:
        return self._session

    def update_session(self, session: StreamSession | None) -> None:
        """The account's current session (None: none is live). A new token replaces the one
        in use: the open connection is closed and the stream reconnects with it at once."""
        current = self._session
        self._session = session
        if session is None or current is None or session.token != current.token:
            self._renewed = True
            self._wakeup.set()
            websocket = self._websocket
            if websocket is not None:
                closing = asyncio.ensure_future(websocket.close(code=1000, reason="renewed"))
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        websocket = self._websocket
        if websocket is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(code=1001, reason="stopping"), 2)

    # ---- the loop ---------------------------------------------------------------------------

    def _set_status(self, status: StreamStatus, detail: str = "") -> None:
        if status != self.status:
            self.status_since = _now()
        self.status = status
        self.detail = detail
        if self._on_status is not None:
            try:
                self._on_status(self, status, detail)
            except Exception:  # health reporting must never stop the stream
                logger.exception("stream status callback failed")

    async def _sleep(self, seconds: float | None) -> None:
        """Sleep (None: until woken), but wake at once for a stop or a new session."""
        self._wakeup.clear()
        if self._stopping or self._renewed:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=seconds)

    async def run(self) -> None:
        attempt = 0
        while not self._stopping:
            session = self._session
            if session is None or session.token in self._ended:
                self._set_status(StreamStatus.WAITING, self.detail or "no live broker session")
                await self._sleep(None)
                self._renewed = False
                attempt = 0
                continue
            self._renewed = False
            connected_at: float | None = None
            failure = ""
            refused = False
            try:
                connected_at = await self._connect_and_read(session)
            except SessionEnded as exc:
                self._ended.add(session.token)
                logger.warning(
                    "broker stream session ended",
                    extra={"account_id": self.account_id, "reason": str(exc)},
                )
                try:
                    await self._on_session_ended(session, str(exc))
                except Exception:
                    logger.exception("marking the broker session ended failed")
                self._set_status(StreamStatus.WAITING, str(exc))
                continue
            except asyncio.CancelledError:
                raise
            except _Connected as connected:
                connected_at, failure = connected.at, connected.reason
                refused = isinstance(connected.__cause__, StreamRefused)
            except StreamRefused as exc:
                failure, refused = f"{type(exc).__name__}: {exc}", True
            except (OSError, TimeoutError, WebSocketException, StreamDead) as exc:
                failure = f"{type(exc).__name__}: {exc}"
            except (BrokerError, sio.ProtocolError, ValueError) as exc:
                failure = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a bug must not end the stream for good
                logger.exception("broker stream failed", extra={"account_id": self.account_id})
                failure = f"{type(exc).__name__}: {exc}"
            finally:
                self._websocket = None
            if session.token:
                failure = failure.replace(session.token, "[REDACTED]")
            if self._stopping:
                break
            if connected_at is not None and time.monotonic() - connected_at >= self.stable_after:
                attempt = 0
            if self._renewed:
                continue  # a new token: reconnect now, no backoff
            delay = self.backoff.delay(attempt)
            attempt += 1
            self.reconnects += 1
            self.delays.append(delay)
            metrics.inc("broker_stream_reconnects_total", source=SOURCE)
            self._set_status(StreamStatus.RECONNECTING, failure)
            extra = {"account_id": self.account_id, "delay": round(delay, 2), "why": failure}
            if refused:  # not the token: the session is kept, and the refusal is logged
                logger.warning("broker stream refused, session kept; reconnecting", extra=extra)
            else:
                logger.info("broker stream reconnecting", extra=extra)
            await self._sleep(delay)
        self._set_status(StreamStatus.STOPPED, "")

    async def _connect_and_read(self, session: StreamSession) -> float | None:
        url = sio.stream_url(session.base_url, token=session.token, user_id=session.user_id)
        address = await judged_address(session.base_url)
        self._set_status(
            StreamStatus.CONNECTING if self.connects == 0 else StreamStatus.RECONNECTING,
            self.detail,
        )
        async with websockets.connect(
            url,
            host=address,
            proxy=None,
            open_timeout=self.open_timeout,
            ping_interval=None,  # Engine.IO pings, not WebSocket pings
            close_timeout=2,
            max_size=MAX_FRAME_BYTES,
            compression=None,
        ) as websocket:
            self._websocket = websocket
            if self._stopping or self._renewed:
                return None
            handshake = await self._handshake(websocket)
            connected_at = time.monotonic()
            self.connects += 1
            self._set_status(StreamStatus.CONNECTED, "")
            await self._emit(
                BrokerEvent(
                    account_id=self.account_id,
                    kind=BrokerEventKind.CONNECTED,
                    source=SOURCE,
                    received_at=_now(),
                    detail=f"connect #{self.connects}",
                )
            )
            try:
                await self._read(websocket, session, handshake)
            except SessionEnded:
                raise
            except (ConnectionClosed, StreamDead, StreamRefused, sio.ProtocolError, OSError) as exc:
                raise _Connected(connected_at, f"{type(exc).__name__}: {exc}") from exc
            return connected_at

    async def _handshake(self, websocket) -> dict:
        """The open packet, then the namespace connect (`40`) or a refusal (`44`)."""
        deadline = time.monotonic() + self.open_timeout
        handshake = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no Socket.IO connect from the broker")
            frame = await asyncio.wait_for(websocket.recv(), timeout=remaining)
            kind, payload = sio.decode_engineio(frame)
            if kind == sio.EIO_OPEN:
                handshake = sio.decode_open(payload)
            elif kind == sio.EIO_MESSAGE and handshake is not None:
                packet = sio.decode_socketio(payload)
                if packet.type == sio.SIO_CONNECT and packet.namespace == "/":
                    return handshake
                if packet.type == sio.SIO_ERROR:
                    raise _refusal(packet.data)
                if packet.type == sio.SIO_EVENT:
                    raise sio.ProtocolError("an event before the Socket.IO connect")
            elif kind == sio.EIO_CLOSE:
                raise StreamDead("the broker closed the stream during the handshake")
            elif kind == sio.EIO_PING:
                await websocket.send(sio.EIO_PONG + payload)

    async def _read(self, websocket, session: StreamSession, handshake: dict) -> None:
        interval, timeout = handshake["ping_interval"], handshake["ping_timeout"]
        next_ping = time.monotonic() + interval
        pong_due: float | None = None
        heard_at = time.monotonic()
        while True:
            now = time.monotonic()
            if pong_due is not None and now >= pong_due:
                raise StreamDead(f"no pong within {timeout:g}s")
            if now - heard_at > interval + timeout:
                raise StreamDead("the broker went silent")
            if now >= next_ping:
                await websocket.send(sio.EIO_PING)
                if pong_due is None:
                    pong_due = now + timeout
                next_ping = now + interval
            wait = min(next_ping, pong_due or next_ping) - now
            try:
                frame = await asyncio.wait_for(websocket.recv(), timeout=max(wait, 0.01))
            except TimeoutError:
                continue
            heard_at = time.monotonic()
            kind, payload = sio.decode_engineio(frame)
            if kind == sio.EIO_PONG:
                pong_due = None
            elif kind == sio.EIO_PING:  # not in Engine.IO 3, but harmless to answer
                await websocket.send(sio.EIO_PONG + payload)
            elif kind == sio.EIO_CLOSE:
                raise StreamDead("the broker closed the stream")
            elif kind == sio.EIO_MESSAGE:
                await self._on_packet(sio.decode_socketio(payload), session)

    async def _on_packet(self, packet: sio.SocketIOPacket, session: StreamSession) -> None:
        if packet.type == sio.SIO_DISCONNECT:
            raise StreamDead("the broker disconnected the stream")
        if packet.type == sio.SIO_ERROR:
            raise _refusal(packet.data)
        if packet.type != sio.SIO_EVENT or packet.namespace != "/":
            return
        name, args = packet.event, packet.args
        received_at = _now()
        self.last_event_at = received_at
        if name == "logout":
            await self._emit(
                BrokerEvent(
                    account_id=self.account_id,
                    kind=BrokerEventKind.LOGOUT,
                    source=SOURCE,
                    received_at=received_at,
                    detail=_text(args[0] if args else ""),
                )
            )
            raise SessionEnded(f"the broker ended the session (logout): {_text(args)}")
        if name in ("order", "trade", "position"):
            event = self._event_of(name, args, received_at, session)
            if event is not None:
                await self._emit(event)
            return
        if name == "error":
            logger.warning(
                "broker stream error event",
                extra={"account_id": self.account_id, "error": _text(args)[:500]},
            )
        # joined, tradeConversion and anything new: nothing for the desk to act on (a
        # conversion changes a position's product; the cycle's positions read follows it).
        self._count(name or "unknown")

    def _event_of(
        self, name: str, args: list, received_at: datetime, session: StreamSession
    ) -> BrokerEvent | None:
        order: BrokerOrderRow | None = None
        trade: BrokerTradeRow | None = None
        position: BrokerPositionRow | None = None
        try:
            row = _row_of(args)
            if name == "order":
                kind = BrokerEventKind.ORDER
                order = xts_wire.order_row_from_xts(row)
            elif name == "trade":
                kind = BrokerEventKind.TRADE
                trade = xts_wire.trade_row_from_xts(row)
            else:
                kind = BrokerEventKind.POSITION
                position = xts_wire.position_row_from_xts(row)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            # An unreadable row (RecursionError: nested past the JSON parser's depth) is not
            # acted on, and the connection stays; the next sync reads the book instead.
            logger.warning(
                "unreadable broker stream row",
                extra={"account_id": self.account_id, "stream_event": name, "error": str(exc)},
            )
            self._count(f"{name}-unreadable")
            return None
        if not session.is_investor_client and not xts_wire.is_for_client(row, session.client_id):
            return None  # another client code of the dealer login
        return BrokerEvent(
            self.account_id, kind, SOURCE, received_at, order=order, trade=trade, position=position
        )

    def _count(self, name: str) -> None:
        metrics.inc("broker_stream_events_not_dispatched_total", source=SOURCE, event=name)

    async def _emit(self, event: BrokerEvent) -> None:
        await self._on_event(event)


class _Connected(Exception):
    """A connection that was up (since `at`) ended: `reason`."""

    def __init__(self, at: float, reason: str):
        super().__init__(reason)
        self.at = at
        self.reason = reason


def _row_of(args: list) -> dict:
    """The row of an event: XTS sends it as a JSON string; an object is accepted too."""
    if not args:
        raise ValueError("an event without a row")
    row = args[0]
    if isinstance(row, str):
        row = json.loads(row)
    if not isinstance(row, dict):
        raise ValueError("the event's row is not an object")
    return row


def _text(value) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)[:500]
    except (TypeError, ValueError):
        return str(value)[:500]
