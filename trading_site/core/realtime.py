"""The one place that names WebSocket groups and message types, and sends to a user.

Services call `notify_user_on_commit(user_id, message)` so a message is only sent once the
change it describes is committed; the consumer (monitoring.consumers) forwards group
messages to every open connection of the user.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

logger = logging.getLogger(__name__)

# Server -> client message types (SPEC 9).
CONNECTION_ESTABLISHED = "connection_established"
MONITORING_ERRORS = "monitoring_errors"
ORDER_UPDATE = "order_update"
PNL_UPDATE = "pnl_update"
POSITIONS_UPDATE = "positions_update"
CYCLE_COMPLETE = "cycle_complete"
MARKET_CLOSED = "market_closed"
PONG = "pong"
ERROR = "error"

# The channel-layer event type the consumer handles (method `forward`).
FORWARD_EVENT = "forward"


def user_group(user_id: int) -> str:
    return f"user.{int(user_id)}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class _Publisher:
    """One long-lived event loop thread per process that owns the channel layer's Redis
    connections (full stack only).

    `async_to_sync(layer.group_send)` per message pays a new event loop and a new Redis
    connection on every call (channels_redis pools are per loop); here both live as long as
    the process. Requests hand the message over and return at once; delivery failures are
    logged. Messages of one user are delivered in the order they were handed over: each
    send waits for the previous send of the same user.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self._tails: dict[int, asyncio.Future] = {}
        self._pending = 0
        self._idle = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="realtime-publisher", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, events: list[tuple[int, dict[str, Any]]]) -> None:
        """Hand (user id, event) pairs to the loop in one wake-up, however many."""
        with self._idle:
            self._pending += len(events)
        # call_soon_threadsafe keeps the callers' order (FIFO); _chain runs on the loop.
        self.loop.call_soon_threadsafe(self._chain_all, events)

    def _chain_all(self, events: list[tuple[int, dict[str, Any]]]) -> None:
        # One task per user for the whole hand-over (a batch's 500 order_updates of one
        # user): a task and a wait per message cost more CPU than their sends.
        by_user: dict[int, list[dict[str, Any]]] = {}
        for user_id, event in events:
            by_user.setdefault(user_id, []).append(event)
        for user_id, user_events in by_user.items():
            self._chain(user_id, user_events)

    def _chain(self, user_id: int, events: list[dict[str, Any]]) -> None:
        previous = self._tails.get(user_id)
        task = self.loop.create_task(self._deliver(previous, user_id, events))
        self._tails[user_id] = task

        def forget(done: asyncio.Future) -> None:
            if self._tails.get(user_id) is done:
                del self._tails[user_id]

        task.add_done_callback(forget)

    async def _deliver(
        self, previous: asyncio.Future | None, user_id: int, events: list[dict[str, Any]]
    ) -> None:
        """Send the user's events one after the other, after the user's earlier ones."""
        if previous is not None:
            # Its failures were logged by itself; we only wait for our turn.
            await asyncio.wait([previous])
        for event in events:
            try:
                layer = get_channel_layer()
                if layer is not None:
                    await layer.group_send(user_group(user_id), event)
            except Exception:
                logger.exception("websocket notify failed", extra={"user_id": user_id})
            finally:
                with self._idle:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until everything handed over so far was sent (or failed); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)


_publisher: _Publisher | None = None
_publisher_lock = threading.Lock()


def _get_publisher() -> _Publisher:
    """The process's publisher, created lazily per PID: a process forked after the first
    notify (gunicorn --preload, celery prefork) does not inherit a live thread, only the
    object of a dead one, so a new PID gets its own."""
    global _publisher
    publisher = _publisher
    if publisher is not None and publisher.pid == os.getpid():
        return publisher
    with _publisher_lock:
        if _publisher is None or _publisher.pid != os.getpid():
            _publisher = _Publisher()
        return _publisher


def _drain_at_exit() -> None:
    """A short-lived process (a management command, a script) sends what it handed over."""
    publisher = _publisher
    if publisher is not None and publisher.pid == os.getpid():
        if not publisher.wait_idle(timeout=2.0):
            logger.warning("websocket notifications still pending at exit were dropped")


atexit.register(_drain_at_exit)


def flush_notifications(timeout: float = 5.0) -> bool:
    """Wait until every notification handed over by this process was delivered (or failed).
    For tests and scripts; requests never wait."""
    publisher = _publisher
    if publisher is None or publisher.pid != os.getpid():
        return True
    return publisher.wait_idle(timeout)


# json.dumps(message, cls=DjangoJSONEncoder) without a new encoder per message (a batch
# notifies 500).
_MESSAGE_JSON = DjangoJSONEncoder()


def _event(message: dict[str, Any]) -> dict[str, Any]:
    """The group event: the message, and its JSON text serialized once here, so the web
    process forwards the text to each of the user's connections without encoding it again."""
    import json

    text = _MESSAGE_JSON.encode(message)
    return {"type": FORWARD_EVENT, "message": json.loads(text), "text": text}


def notify_users(messages: list[tuple[int, dict[str, Any]]]) -> None:
    """Send many (user_id, message) pairs now, in order per user (from sync code).
    Delivery problems are logged, never raised: a lost notification must not undo the change
    it reports."""
    if not messages:
        return
    try:
        if settings.EMBEDDED:
            _send_embedded(messages)
            return
        _get_publisher().submit([(int(user_id), _event(message)) for user_id, message in messages])
    except Exception:
        logger.exception("websocket notify failed", extra={"messages": len(messages)})


def _send_embedded(messages: list[tuple[int, dict[str, Any]]]) -> None:
    """The in-memory layer belongs to the server's event loop: async_to_sync hands the sends
    back to that loop when called from a sync_to_async thread (one hop for all of them)."""
    layer = get_channel_layer()
    if layer is None:
        return

    async def send_all() -> None:
        for user_id, message in messages:
            try:
                await layer.group_send(user_group(user_id), _event(message))
            except Exception:
                logger.exception("websocket notify failed", extra={"user_id": user_id})

    async_to_sync(send_all)()


def notify_user(user_id: int, message: dict[str, Any]) -> None:
    """Send now (from sync code); see notify_users."""
    notify_users([(user_id, message)])


async def anotify_user(user_id: int, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(user_group(user_id), _event(message))
    except Exception:
        logger.exception("websocket notify failed", extra={"user_id": user_id})


def notify_user_on_commit(user_id: int, message: dict[str, Any]) -> None:
    """Send after the current transaction commits (at once when there is none)."""
    transaction.on_commit(lambda: notify_user(user_id, message))


def notify_users_on_commit(messages: list[tuple[int, dict[str, Any]]]) -> None:
    """Many messages (a batch), sent after the current transaction commits."""
    if messages:
        transaction.on_commit(lambda: notify_users(messages))
