"""Hands BrokerEvents to the desk: the handler and the resync, named by dotted path in
settings (BROKER_EVENT_HANDLER, BROKER_RESYNC_HANDLER), because the brokers layer must not
import the services that act on them.

The handler is synchronous Django code. It runs in a thread pool of
BROKER_EVENT_HANDLER_THREADS threads (through `sync_to_async`, so its `async_to_sync` calls,
e.g. the WebSocket notifications of the embedded in-memory channel layer, hop back onto the
runner's event loop), one account at a time and in the order the events arrived: a queue
and a worker task per account. A CONNECTED event (a stream (re)connected: the gap since is
unknown) is followed by the resync of that account in the same queue, so the events that
arrive meanwhile are handled after the REST sync.

When events queue up behind a running handler (a burst of fills: the entry's order row and
trade, then its stop-loss and target accepted), and the handler offers `many` (a callable
taking a list), the account's queued ORDER, TRADE and POSITION events go to it as one run, in
order (at most MAX_RUN): the run is applied event by event, then protection, PnL and the
notifications run once for all of it, instead of once per event.

A handler that offers `act` and `finish` splits a run in two: `act(events)` does what cannot
wait (the legs, protection, one-cancels-other) and returns per account what it left
(e.g. the PnL); the account's `finish(account_id, left)` runs once that account has no more
events queued (or FINISH_WITHIN_SECONDS after its first left work, for an account whose
events never stop), in a pool of one thread, so that during a burst every account's
protection comes before anyone's PnL, and an account's PnL is computed once per burst, not
per run.

An account that stays busy (the handler raises `Busy`: a cycle or a trader's change holds
the account's exclusion past the handler's wait) is expected, not a fault: the same event is
tried again after 0.5, 1, 2, ... seconds (BROKER_EVENT_BUSY_RETRIES times), ahead of the
account's later events, logged at info without a traceback. Only when every retry found the
account busy is it left to the next cycle (a warning and broker_events_busy_dropped_total).
A handler that raises anything else is logged and counted; the events after it are still
handled (the 60-second cycle reconciles whatever one event failed to do).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections
from django.utils.module_loading import import_string

from orders.brokers.events import BrokerEvent, BrokerEventKind
from trading_site.core import metrics
from trading_site.core.errors import Busy

logger = logging.getLogger(__name__)

# The kinds a handler's `many` takes as one run (CONNECTED and LOGOUT go alone: a connect is
# followed by its resync), and the longest run.
RUN_KINDS = frozenset({BrokerEventKind.ORDER, BrokerEventKind.TRADE, BrokerEventKind.POSITION})
MAX_RUN = 100
# An account whose events keep coming gets its `finish` (its PnL) at least this often anyway.
FINISH_WITHIN_SECONDS = 1.0


@dataclass(frozen=True)
class Handlers:
    handle_event: Callable[[BrokerEvent], object]
    resync_account: Callable[..., object]
    # A run of one account's queued events at once, when the handler offers it (`many`).
    handle_events: Callable[[list[BrokerEvent]], object] | None = None
    # A run's urgent part, returning per account what it left, and that left part, run once
    # the account's queue is empty (when the handler offers both: `act`, `finish`).
    act: Callable[[list[BrokerEvent]], Mapping[int, Collection[str]]] | None = None
    finish: Callable[[int, frozenset[str]], object] | None = None


def resolve_handlers() -> Handlers:
    """The configured handler and resync callables. Raises ImproperlyConfigured when either
    does not import: a stream runner must refuse to start rather than drop events."""
    resolved = []
    for setting in ("BROKER_EVENT_HANDLER", "BROKER_RESYNC_HANDLER"):
        path = str(getattr(settings, setting, "") or "")
        try:
            target = import_string(path)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"{setting}={path!r} does not import ({exc}); the broker event streams cannot "
                "start without it"
            ) from exc
        if not callable(target):
            raise ImproperlyConfigured(f"{setting}={path!r} is not callable")
        resolved.append(target)
    handle_event, resync = resolved
    many, act, finish = (getattr(handle_event, name, None) for name in ("many", "act", "finish"))
    split = callable(act) and callable(finish)
    return Handlers(
        handle_event,
        resync,
        handle_events=many if callable(many) else None,
        act=act if split else None,
        finish=finish if split else None,
    )


class MetricsBuffer:
    """Counts and latencies collected in memory and written in one batch (`flush`, from a
    worker thread): a metrics write is a Redis round trip in the full stack, too slow to make
    on the event loop for every event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter = Counter()
        self._samples: dict[tuple, list[float]] = defaultdict(list)

    def inc(self, name: str, **labels) -> None:
        with self._lock:
            self._counts[(name, tuple(sorted(labels.items())))] += 1

    def observe(self, name: str, seconds: float, **labels) -> None:
        with self._lock:
            self._samples[(name, tuple(sorted(labels.items())))].append(seconds)

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, Counter()
            samples, self._samples = self._samples, defaultdict(list)
        for (name, labels), value in counts.items():
            metrics.inc(name, value, **dict(labels))
        for (name, labels), values in samples.items():
            metrics.observe_many(name, values, **dict(labels))


def call_with_connection(function, *args, **kwargs):
    """Run synchronous Django code from a worker thread: stale or broken database connections
    are replaced before and closed after, as around a request."""
    close_old_connections()
    try:
        return function(*args, **kwargs)
    finally:
        close_old_connections()


class Dispatcher:
    def __init__(self, handlers: Handlers, *, threads: int | None = None):
        self.handlers = handlers
        self.executor = ThreadPoolExecutor(
            max_workers=max(1, threads or int(settings.BROKER_EVENT_HANDLER_THREADS)),
            thread_name_prefix="broker-events",
        )
        # `finish` work (PnL after a burst) in a pool of its own: one thread, behind the rest.
        self.finish_executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="broker-events-finish"
        )
        self.metrics = MetricsBuffer()
        # Per account: what its runs left for `finish`, and since when (monotonic).
        self._left: dict[int, set[str]] = {}
        self._left_since: dict[int, float] = {}
        self.finish_within = FINISH_WITHIN_SECONDS
        self._queues: dict[int, deque] = {}
        self._workers: dict[int, asyncio.Task] = {}
        self.handled = 0
        self.failed = 0
        self.busy_retried = 0
        self.busy_retries = max(0, int(settings.BROKER_EVENT_BUSY_RETRIES))
        self.busy_first_delay = 0.5

    def submit(self, event: BrokerEvent) -> asyncio.Future:
        """Queue the event behind the account's earlier ones; the future resolves once the
        handler (and for CONNECTED, the resync) returned, or failed."""
        self.metrics.inc("broker_events_received_total", source=event.source, kind=str(event.kind))
        done = asyncio.get_running_loop().create_future()
        self._queues.setdefault(event.account_id, deque()).append((event, done))
        worker = self._workers.get(event.account_id)
        if worker is None or worker.done():
            self._workers[event.account_id] = asyncio.ensure_future(self._work(event.account_id))
        return done

    async def _work(self, account_id: int) -> None:
        queue = self._queues[account_id]
        batching = self.handlers.handle_events is not None or self.handlers.act is not None
        while queue or account_id in self._left:
            if not queue or self._left_overdue(account_id):
                # The account's burst is over (or has gone on for long enough): what its
                # runs left (its PnL), once.
                self._left_since.pop(account_id, None)
                await self._finish(account_id, frozenset(self._left.pop(account_id)))
                continue
            run = [queue.popleft()]
            if batching and run[0][0].kind in RUN_KINDS:
                # Events that queued up meanwhile (a burst of fills) go as one run, in order.
                while queue and queue[0][0].kind in RUN_KINDS and len(run) < MAX_RUN:
                    run.append(queue.popleft())
            try:
                await self._handle([event for event, _ in run])
            finally:
                for _, done in run:
                    if not done.done():
                        done.set_result(None)
        self._queues.pop(account_id, None)
        self._workers.pop(account_id, None)

    def _left_overdue(self, account_id: int) -> bool:
        since = self._left_since.get(account_id)
        return since is not None and time.monotonic() - since >= self.finish_within

    async def _run(self, function, *args, executor=None, **kwargs):
        return await sync_to_async(
            call_with_connection, thread_sensitive=False, executor=executor or self.executor
        )(function, *args, **kwargs)

    async def _finish(self, account_id: int, left: frozenset[str]) -> None:
        assert self.handlers.finish is not None  # work is left only by `act`
        try:
            await self._run_retrying_busy(
                account_id, self.handlers.finish, account_id, left, executor=self.finish_executor
            )
        except asyncio.CancelledError:
            raise
        except Busy:
            self.metrics.inc("broker_event_finish_errors_total")
            logger.warning(
                "account still busy: %s after broker events left to the next cycle",
                ", ".join(sorted(left)),
                extra={"account_id": account_id},
            )
        except Exception:
            self.failed += 1
            self.metrics.inc("broker_event_finish_errors_total")
            logger.exception(
                "finishing broker events failed (%s); the next cycle does it",
                ", ".join(sorted(left)),
                extra={"account_id": account_id},
            )

    async def _handle(self, events: list[BrokerEvent]) -> None:
        """One event through the handler (a CONNECTED then through the resync), or a run of
        one account's events through its `many`; retried while the account is busy, a
        failure logged and counted per event."""
        first = events[0]
        try:
            if self.handlers.act is not None and first.kind in RUN_KINDS:
                left = await self._run_retrying_busy(first, self.handlers.act, events)
                for account_id, work in (left or {}).items():
                    self._left.setdefault(account_id, set()).update(work)
                    self._left_since.setdefault(account_id, time.monotonic())
                if len(events) > 1:
                    self.metrics.inc("broker_event_runs_total", source=first.source)
            elif len(events) > 1:
                assert self.handlers.handle_events is not None  # runs only with `many`
                await self._run_retrying_busy(first, self.handlers.handle_events, events)
                self.metrics.inc("broker_event_runs_total", source=first.source)
            else:
                await self._run_retrying_busy(first, self.handlers.handle_event, first)
                if first.kind == BrokerEventKind.CONNECTED:
                    await self._run_retrying_busy(
                        first,
                        self.handlers.resync_account,
                        first.account_id,
                        reason=f"{first.source} connected ({first.detail})".strip(),
                    )
            self.handled += len(events)
        except asyncio.CancelledError:
            raise
        except Busy:
            self._count_failed(events, "broker_events_busy_dropped_total")
            logger.warning(
                "account still busy after %s retries: %s broker event(s) left to the next cycle",
                self.busy_retries,
                len(events),
                extra={"account_id": first.account_id, "kind": str(first.kind)},
            )
        except Exception:
            self._count_failed(events, "broker_event_handler_errors_total")
            logger.exception(
                "broker event handler failed (%s event(s))",
                len(events),
                extra={"account_id": first.account_id, "kind": str(first.kind)},
            )
        finally:
            now = datetime.now(tz=UTC)
            for event in events:
                self.metrics.observe(
                    "broker_event_handler_seconds",
                    max(0.0, (now - event.received_at).total_seconds()),
                    source=event.source,
                    kind=str(event.kind),
                )

    def _count_failed(self, events: list[BrokerEvent], metric: str) -> None:
        self.failed += len(events)
        for event in events:
            self.metrics.inc(metric, source=event.source, kind=str(event.kind))

    async def _run_retrying_busy(self, about: BrokerEvent | int, function, *args, **kwargs):
        """`function` in the pool (`executor=` another); when the account is busy, again
        after a pause (the account's later events wait behind this one: their order is
        kept). `about` is the event (or the account id) the call is for. Raises Busy when
        the last retry found it busy too."""
        if isinstance(about, BrokerEvent):
            account_id, kind, source = about.account_id, str(about.kind), about.source
        else:
            account_id, kind, source = about, "finish", "finish"
        delay = self.busy_first_delay
        for attempt in range(self.busy_retries + 1):
            try:
                return await self._run(function, *args, **kwargs)
            except Busy:
                if attempt == self.busy_retries:
                    raise
            self.busy_retried += 1
            self.metrics.inc("broker_events_busy_retried_total", source=source)
            logger.info(
                "account busy: broker event retried in %.1f s",
                delay,
                extra={"account_id": account_id, "kind": kind},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 8.0)

    def pending(self) -> int:
        return sum(len(queue) for queue in self._queues.values()) + len(self._workers)

    async def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event is handled (True) or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while self._workers:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.finish_executor.shutdown(wait=False, cancel_futures=True)
        self.metrics.flush()
