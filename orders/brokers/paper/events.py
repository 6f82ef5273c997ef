"""The paper exchange's events: every change it makes to a PAPER account's orders, told the
moment its transaction commits, in the shape the XTS stream speaks (orders.brokers.events).

Matching happens in whichever process calls the exchange (a web request placing an order,
the price feed, a Celery worker, the XTS simulator), so the events are published from there,
after commit (`transaction.on_commit`: a rolled-back transaction publishes nothing), one
ORDER event per changed order (its paper order-book row) and one TRADE event per fill:

- "redis" (the full stack): appended to a Redis Stream, one per partition (the account id
  modulo PAPER_EVENT_PARTITIONS keeps an account's events in order in one partition), read by
  the `run_broker_streams` processes, one reader per partition under a lease
  (orders.brokers.streams). The stream keeps the events while no reader runs, capped at
  PAPER_EVENT_BACKLOG per partition (the oldest go first; the 60-second cycle reconciles
  what was dropped), and the reader's cursor is stored only while it holds the lease, so a
  partition's events are handled by one process, once (a batch in flight when its process
  dies is handled again by the next owner: the handler is idempotent);
- "memory" (the embedded default): handed to the server's own event loop, where the stream
  runner hands them to the handler; kept (capped) until a runner attaches;
- "off": nothing is published (the cycle alone syncs paper accounts).

A failure to publish is logged and counted, never raised: the order stands, and the next
cycle reconciles it.

Books of the XTS simulator's logins (no account) publish nothing here: the simulator streams
their changes itself, as a broker would (orders.brokers.xts.simulator_stream).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django_redis import get_redis_connection
from redis.exceptions import NoScriptError

from orders.brokers.base import BrokerOrderRow
from orders.brokers.event_codec import encode_event
from orders.brokers.events import BrokerEvent, BrokerEventKind
from orders.brokers.paper.book import order_row, trade_row
from orders.brokers.paper.models import PaperBook, PaperOrder, PaperTrade
from trading_site.core import metrics

logger = logging.getLogger(__name__)

SOURCE = "paper"
REDIS, MEMORY, OFF = "redis", "memory", "off"


def transport() -> str:
    value = str(getattr(settings, "PAPER_EVENTS_TRANSPORT", OFF) or OFF).strip().lower()
    return value if value in (REDIS, MEMORY) else OFF


def partitions() -> int:
    """How many partitions the events are spread over (one in memory)."""
    if transport() != REDIS:
        return 1
    return max(1, int(settings.PAPER_EVENT_PARTITIONS))


def partition_of(account_id: int) -> int:
    return int(account_id) % partitions()


def stream_key(partition: int) -> str:
    return cache.make_key(f"broker-events:paper:{partition}")


def _backlog() -> int:
    return max(100, int(settings.PAPER_EVENT_BACKLOG))


# ---- building the events (inside the exchange's transaction) ----------------------------


def events_of(
    account_id: int,
    orders: Iterable[PaperOrder],
    fills: Iterable[PaperTrade],
    rows: Mapping[int, BrokerOrderRow] | None = None,
) -> list[BrokerEvent]:
    """The events of one account's changes: each order's row as it is now, then each fill.
    `rows`: order rows the caller built of these orders as they are now, by pk."""
    now = datetime.now(tz=UTC)
    by_pk = {}
    events = []
    for order in orders:
        by_pk[order.pk] = order
        row = rows.get(order.pk) if rows else None
        events.append(
            BrokerEvent(
                account_id, BrokerEventKind.ORDER, SOURCE, now, order=row or order_row(order)
            )
        )
    for fill in fills:
        order = by_pk.get(fill.order_id) or fill.order
        events.append(
            BrokerEvent(
                account_id, BrokerEventKind.TRADE, SOURCE, now, trade=trade_row(fill, order)
            )
        )
    return events


def publish_on_commit(
    *,
    orders: Iterable[PaperOrder],
    fills: Iterable[PaperTrade] = (),
    book: PaperBook | None = None,
    rows: Mapping[int, BrokerOrderRow] | None = None,
) -> None:
    """Publish the changes of these orders (and fills) once the current transaction commits.
    Only orders of PAPER accounts' books count; `book`, when the caller has it, saves the
    lookup of which account a book belongs to; `rows`, the orders' rows as they are now
    (by pk) when the caller built them already."""
    if transport() == OFF:
        return
    orders = [order for order in orders if order.pk is not None]
    fills = list(fills)
    if not orders and not fills:
        return
    if book is not None:
        accounts = {book.pk: book.account_id}
    else:
        book_ids = {order.book_id for order in orders} | {fill.book_id for fill in fills}
        accounts = dict(
            PaperBook.objects.filter(pk__in=book_ids, account__isnull=False).values_list(
                "pk", "account_id"
            )
        )
    grouped: dict[int, tuple[list, list]] = {}
    for order in orders:
        account_id = accounts.get(order.book_id)
        if account_id is not None:
            grouped.setdefault(account_id, ([], []))[0].append(order)
    for fill in fills:
        account_id = accounts.get(fill.book_id)
        if account_id is not None:
            grouped.setdefault(account_id, ([], []))[1].append(fill)
    events = [
        event
        for account_id, (changed, filled) in grouped.items()
        for event in events_of(account_id, changed, filled, rows)
    ]
    if events:
        transaction.on_commit(lambda: publish(events))


def publish(events: list[BrokerEvent]) -> None:
    """Hand the events to the transport now (after commit). Never raises."""
    try:
        if transport() == REDIS:
            _publish_to_redis(events)
        elif transport() == MEMORY:
            memory_bus.publish(events)
    except Exception:
        metrics.inc("paper_events_publish_errors_total", value=len(events))
        logger.exception("publishing paper events failed", extra={"events": len(events)})


def _publish_to_redis(events: list[BrokerEvent]) -> None:
    cap = _backlog()
    by_key: dict[str, list[str]] = {}  # per partition, in order (a batch's 500: one account)
    keys: dict[int, str] = {}
    for event in events:
        key = keys.get(event.account_id)
        if key is None:
            key = keys[event.account_id] = stream_key(partition_of(event.account_id))
        by_key.setdefault(key, []).append(encode_event(event))
    client = get_redis_connection("default")
    if len(events) == 1:  # a single order's event (every placement's): one plain XADD
        [(key, [text])] = by_key.items()
        client.xadd(key, {"e": text}, maxlen=cap, approximate=True)
        return
    if len(by_key) == 1:
        # One stream, many events (a batch): one script appends them all, as the pipeline's
        # XADDs would, without redis-py's Python per command (a tenth of a batch's publish).
        [(key, texts)] = by_key.items()
        try:
            client.evalsha(_APPEND_SHA, 1, key, cap, *texts)
        except NoScriptError:  # the first call since Redis started: EVAL caches it
            client.eval(_APPEND_SCRIPT, 1, key, cap, *texts)
        return
    pipe = client.pipeline(transaction=False)
    for key, texts in by_key.items():
        for text in texts:
            pipe.xadd(key, {"e": text}, maxlen=cap, approximate=True)
    pipe.execute()


# XADD key MAXLEN ~ cap * e text, for each text in order (ARGV: cap, then the texts).
_APPEND_SCRIPT = """
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[i])
end
return #ARGV - 1
"""
_APPEND_SHA = hashlib.sha1(_APPEND_SCRIPT.encode()).hexdigest()


# ---- in-process (the embedded default) ------------------------------------------------------


class MemoryBus:
    """Events handed to one consumer on its event loop, from any thread. Without a
    consumer they wait (at most PAPER_EVENT_BACKLOG; the oldest are dropped)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: deque[BrokerEvent] = deque()
        self._consumer: tuple | None = None  # (loop, callback)
        self.dropped = 0

    def publish(self, events: list[BrokerEvent]) -> None:
        with self._lock:
            consumer = self._consumer
            if consumer is None:
                self._waiting.extend(events)
                overflow = len(self._waiting) - _backlog()
                for _ in range(max(0, overflow)):
                    self._waiting.popleft()
                    self.dropped += 1
                if overflow > 0:
                    metrics.inc("paper_events_dropped_total", value=overflow)
                return
        loop, callback = consumer
        loop.call_soon_threadsafe(callback, list(events))

    def attach(self, loop, callback: Callable[[list[BrokerEvent]], None]) -> None:
        """From now on, `callback(events)` runs on `loop` for every publication; the events
        that waited are delivered first."""
        with self._lock:
            self._consumer = (loop, callback)
            waiting, self._waiting = list(self._waiting), deque()
        if waiting:
            loop.call_soon_threadsafe(callback, waiting)

    def detach(self) -> None:
        with self._lock:
            self._consumer = None

    @property
    def attached(self) -> bool:
        return self._consumer is not None

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)


memory_bus = MemoryBus()
