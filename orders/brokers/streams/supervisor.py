"""Where the event streams run: one `StreamSupervisor` per process, in the embedded server's
event loop (orders.brokers.streams.runner.start_in_process) or in each `manage.py
run_broker_streams` process of the full stack.

A process runs "units": `xts:<account id>`, the XTS interactive stream of an active XTS
account with a live broker session, and `paper:<partition>`, the reader of one partition of
the paper exchange's events (orders.brokers.paper.events; the embedded default has one
in-memory "partition" and no lease). Every BROKER_STREAMS_SCAN_SECONDS it:

1. renews the leases of its units (orders.brokers.streams.leases); a unit whose lease is
   gone is stopped, and a watchdog stops any unit whose last successful renewal is older
   than the lease TTL minus a margin (fencing: it stops before another process may start);
2. reads which XTS accounts have a live session (one query: account ids and when each
   session was created, no token decrypted); a unit whose session ended is stopped and its
   lease released, a unit whose session was renewed gets the new token (the stream
   reconnects with it);
3. counts the live stream processes (a Redis sorted set with heartbeats) and aims at its
   fair share of each kind of unit (paper partitions, XTS sessions), at most
   BROKER_STREAMS_CAPACITY in all: it takes free leases up to that share, and above it
   (beyond one XTS unit of slack) releases a tenth of its share per scan, so that a process
   that joins gets its part within seconds without every stream reconnecting at once;
4. writes the health of its units (orders.brokers.streams.health) with a TTL.

Events from every unit go to one Dispatcher (orders.brokers.streams.dispatch): per account,
in order, in a thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from datetime import UTC, datetime
from functools import partial

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from accounts.models import XTS_BROKERS, BrokerSession
from orders.brokers.event_codec import UnreadableEvent, decode_event
from orders.brokers.events import BrokerEvent
from orders.brokers.paper import events as paper_events
from orders.brokers.sessions import credentials_of
from orders.brokers.streams import health
from orders.brokers.streams.dispatch import Dispatcher, call_with_connection
from orders.brokers.xts.stream import Backoff, StreamSession, StreamStatus, XtsStream
from trading_site.core import metrics

logger = logging.getLogger(__name__)


async def cancel_until_done(tasks: list[asyncio.Task], *, every: float = 1.0) -> None:
    """Cancel the tasks and wait for them to end, cancelling again whatever still runs after
    `every` seconds: a step that swallowed a cancellation (code that catches CancelledError
    while it waits for a thread) must not keep a supervisor from stopping."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=every)


# A paper partition's reader hands on at most this many events not yet handled before it
# waits for the oldest (back-pressure on a backlog).
MAX_UNHANDLED = 5_000

XTS_PREFIX = "xts:"
PAPER_PREFIX = "paper:"

_STATES = {
    StreamStatus.CONNECTED: health.CONNECTED,
    StreamStatus.CONNECTING: health.RECONNECTING,
    StreamStatus.RECONNECTING: health.RECONNECTING,
    StreamStatus.WAITING: health.WAITING,
    StreamStatus.STOPPED: health.DOWN,
}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _now() -> datetime:
    return datetime.now(tz=UTC)


# ---- the database side (sync; run in threads) -----------------------------------------------


def xts_candidates() -> dict[int, str]:
    """Active XTS accounts with a live broker session: account id -> the session's identity
    (its creation time: a new login changes it)."""
    rows = BrokerSession.objects.filter(
        account__is_active=True,
        account__broker__in=XTS_BROKERS,
        invalidated_at__isnull=True,
        expires_at__gt=timezone.now(),
    ).values_list("account_id", "created_at")
    return {account_id: created_at.isoformat() for account_id, created_at in rows}


def load_stream_session(account_id: int) -> StreamSession | None:
    row = (
        BrokerSession.objects.select_related("account")
        .filter(
            account_id=account_id,
            account__is_active=True,
            invalidated_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .first()
    )
    if row is None or not row.access_token:
        return None
    credentials = credentials_of(row.account)
    return StreamSession(
        account_id=account_id,
        base_url=credentials.base_url,
        token=row.access_token,
        user_id=row.broker_user_id or credentials.user_id,
        is_investor_client=row.is_investor_client,
        client_id=row.client_id or credentials.client_id,
        identity=row.created_at.isoformat(),
    )


def _db(function):
    """`function` in a worker thread, with a fresh database connection when the old one is
    stale or broken (a long-running process outlives connections)."""
    return sync_to_async(partial(call_with_connection, function), thread_sensitive=False)


# ---- units ---------------------------------------------------------------------------------


class _XtsUnit:
    def __init__(self, supervisor: StreamSupervisor, session: StreamSession):
        self.supervisor = supervisor
        self.account_id = session.account_id
        self.identity = session.identity
        self.stream = XtsStream(
            session,
            on_event=self._on_event,
            on_status=self._on_status,
            backoff=Backoff(
                base=float(settings.BROKER_STREAM_BACKOFF_BASE_SECONDS),
                cap=float(settings.BROKER_STREAM_BACKOFF_CAP_SECONDS),
            ),
        )
        self.task = asyncio.ensure_future(self.stream.run())

    async def _on_event(self, event: BrokerEvent) -> None:
        self.supervisor.dispatcher.submit(event)

    def _on_status(self, stream: XtsStream, status: StreamStatus, detail: str) -> None:
        self.supervisor.health_changed()

    def update(self, session: StreamSession | None) -> None:
        if session is not None:
            self.identity = session.identity
        self.stream.update_session(session)

    def health(self) -> dict[str, health.StreamHealth]:
        stream = self.stream
        return {
            health.account_key(self.account_id): health.StreamHealth(
                state=_STATES[stream.status],
                source="xts-stream",
                since=_iso(stream.status_since),
                last_event_at=_iso(stream.last_event_at),
                reconnects=stream.reconnects,
                process=self.supervisor.leases.owner,
                detail=stream.detail[:300],
            )
        }

    def health_keys(self) -> list[str]:
        return [health.account_key(self.account_id)]

    async def stop(self) -> None:
        await self.stream.stop()
        await _finish(self.task)


class _PaperUnit:
    """The reader of one partition of the paper exchange's events in Redis."""

    def __init__(self, supervisor: StreamSupervisor, unit: str, partition: int):
        self.supervisor = supervisor
        self.unit = unit
        self.partition = partition
        self.key = paper_events.stream_key(partition)
        self.cursor_key = cache.make_key(f"broker-events:paper:{partition}:cursor")
        self.state = health.RECONNECTING
        self.since = _now()
        self.detail = ""
        self.reconnects = 0
        self.last_event_at: datetime | None = None
        self._stopping = False
        self.task = asyncio.ensure_future(self.run())

    def _set(self, state: str, detail: str = "") -> None:
        if state != self.state:
            self.since = _now()
            self.supervisor.health_changed()
        self.state, self.detail = state, detail

    async def run(self) -> None:
        """Read the partition and hand its events to the dispatcher without waiting for
        them: the dispatcher keeps each account's events in order, and one slow or busy
        account must not hold up the others' (head-of-line blocking). The stored cursor
        moves only past events already handled (the handled prefix), so a new owner after a
        crash or a lost lease reads again from the first unhandled one (the handler is
        idempotent)."""
        redis = self.supervisor.redis
        read_from: str | None = None
        pending: deque[tuple[str, asyncio.Future]] = deque()
        while not self._stopping:
            try:
                if read_from is None:
                    read_from = await self.supervisor.leases.get(self.cursor_key) or "0"
                    await self._report_trimmed(read_from)
                    self._set(health.CONNECTED)
                if len(pending) >= MAX_UNHANDLED:  # back-pressure: the oldest first
                    await asyncio.wait({pending[0][1]}, timeout=1.0)
                    reply = None
                else:
                    reply = await redis.xread(
                        {self.key: read_from}, count=500, block=50 if pending else 500
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: try again
                self.reconnects += 1
                metrics.inc("broker_stream_reconnects_total", source=paper_events.SOURCE)
                self._set(health.RECONNECTING, f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)
                continue
            if reply:
                entries = reply[0][1]
                for entry_id, fields in entries:
                    pending.append((entry_id.decode(), self._submit(fields)))
                read_from = entries[-1][0].decode()
            handled = None
            while pending and pending[0][1].done():
                handled = pending.popleft()[0]
            if handled is None:
                continue
            try:
                kept = await self.supervisor.leases.fenced_set(self.unit, self.cursor_key, handled)
            except Exception:
                kept = False
            if not kept:
                # Not ours any more: the next owner starts from the stored cursor.
                self._set(health.DOWN, "lease lost")
                return

    def _submit(self, fields: dict) -> asyncio.Future:
        """The entry's event to the dispatcher; an unreadable one is skipped (done at once)."""
        try:
            event = decode_event(fields[b"e"])
        except (UnreadableEvent, KeyError) as exc:
            logger.warning("unreadable paper event skipped: %s", exc)
            skipped = asyncio.get_running_loop().create_future()
            skipped.set_result(None)
            return skipped
        self.last_event_at = _now()
        self.supervisor.paper_event_seen(event.account_id)
        return self.supervisor.dispatcher.submit(event)

    async def _report_trimmed(self, cursor: str) -> None:
        """Events dropped by the backlog cap before we read them (Redis 7 tells)."""
        try:
            info = await self.supervisor.redis.xinfo_stream(self.key)
        except Exception:
            return  # no stream yet
        deleted = info.get("max-deleted-entry-id") or info.get(b"max-deleted-entry-id")
        if isinstance(deleted, bytes):
            deleted = deleted.decode()
        if deleted and deleted != "0-0" and _id(deleted) > _id(cursor):
            metrics.inc("paper_events_dropped_total")
            logger.warning(
                "paper events were dropped by the backlog cap before a reader came; the "
                "monitoring cycle reconciles those accounts",
                extra={"partition": self.partition, "cursor": cursor, "deleted_up_to": deleted},
            )

    def health(self) -> dict[str, health.StreamHealth]:
        return {
            health.partition_key(self.partition): health.StreamHealth(
                state=self.state,
                source=paper_events.SOURCE,
                since=_iso(self.since),
                last_event_at=_iso(self.last_event_at),
                reconnects=self.reconnects,
                process=self.supervisor.leases.owner,
                detail=self.detail,
            )
        }

    def health_keys(self) -> list[str]:
        return [health.partition_key(self.partition)]

    async def stop(self) -> None:
        # The batch in hand may finish (its cursor is then stored); a batch cut short is
        # read again by the next owner (the handler is idempotent).
        self._stopping = True
        await _finish(self.task, grace=5.0)


class _PaperMemoryUnit:
    """The embedded default: the paper exchange hands its events to this event loop."""

    def __init__(self, supervisor: StreamSupervisor):
        self.supervisor = supervisor
        self.since = _now()
        self.last_event_at: datetime | None = None
        paper_events.memory_bus.attach(asyncio.get_running_loop(), self._deliver)

    def _deliver(self, events: list[BrokerEvent]) -> None:
        for event in events:
            self.last_event_at = _now()
            self.supervisor.paper_event_seen(event.account_id)
            self.supervisor.dispatcher.submit(event)

    def health(self) -> dict[str, health.StreamHealth]:
        return {
            health.partition_key(0): health.StreamHealth(
                state=health.CONNECTED,
                source=paper_events.SOURCE,
                since=_iso(self.since),
                last_event_at=_iso(self.last_event_at),
                process=self.supervisor.leases.owner,
            )
        }

    def health_keys(self) -> list[str]:
        return [health.partition_key(0)]

    async def stop(self) -> None:
        paper_events.memory_bus.detach()


async def _finish(task: asyncio.Task, grace: float = 3.0) -> None:
    """Let a unit's task end by itself within `grace` s, then cancel it and wait for it.
    The unit's own end (an error, its cancellation) is not the caller's; the caller's own
    cancellation (the supervisor shutting down while it stops a unit) always propagates, with
    the unit cancelled on the way: swallowing it would leave the caller's loop running."""
    if task.done():
        _retrieve(task)
        return
    try:
        await asyncio.wait({task}, timeout=grace)
    finally:
        if not task.done():
            task.cancel()
    await asyncio.wait({task})
    _retrieve(task)


def _retrieve(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("broker stream unit ended with %r", task.exception())


def _id(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    return int(millis or 0), int(sequence or 0)


# ---- sharing the units between processes ------------------------------------------------


def fair_share(total: int, live_processes: int, capacity: int) -> int:
    """The units of one kind a process aims to hold: an even part of them, at most
    `capacity`."""
    return max(0, min(capacity, math.ceil(total / max(1, live_processes))))


def to_hand_back(held: int, share: int, *, slack: int) -> int:
    """How many units a process above its share releases this scan: none within `slack`
    of it; beyond, a tenth of the share (at least one) per scan, so that a process that
    joins gets its part within seconds without every stream reconnecting at once."""
    excess = held - share
    if excess <= slack:
        return 0
    return min(excess, max(1, share // 10))


# ---- the supervisor ---------------------------------------------------------------------------


class StreamSupervisor:
    def __init__(
        self,
        *,
        leases,
        dispatcher: Dispatcher,
        paper_mode: str = paper_events.OFF,
        redis=None,
        capacity: int | None = None,
        scan_seconds: float | None = None,
        lease_seconds: float | None = None,
    ):
        self.leases = leases
        self.dispatcher = dispatcher
        self.paper_mode = paper_mode
        self.redis = redis
        self.capacity = int(capacity or settings.BROKER_STREAMS_CAPACITY)
        self.scan_seconds = float(scan_seconds or settings.BROKER_STREAMS_SCAN_SECONDS)
        self.lease_seconds = float(lease_seconds or settings.BROKER_STREAM_LEASE_SECONDS)
        # Stop a unit this long after its last renewal was sent (before the key can expire).
        self.fence_seconds = self.lease_seconds - max(1.0, self.lease_seconds * 0.2)
        self.units: dict[str, _XtsUnit | _PaperUnit] = {}
        self.renewed_at: dict[str, float] = {}
        self.started_at: dict[str, float] = {}  # unit -> when this process took it (monotonic)
        self.live_processes = 1
        self.takeovers = 0
        self._memory_unit: _PaperMemoryUnit | None = None
        self._paper_events: dict[int, str] = {}
        self._health_dirty = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.task: asyncio.Task | None = None  # set by whoever runs `run()` as a task

    # ---- lifecycle ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until `stop` is set (or `shutdown()` is called), then stop every unit."""
        if self.paper_mode == paper_events.MEMORY:
            self._memory_unit = _PaperMemoryUnit(self)
        self._tasks = [
            asyncio.ensure_future(self._every(self.scan_seconds, self.renew)),
            asyncio.ensure_future(self._every(0.2, self.enforce_fence)),
            asyncio.ensure_future(self._every(self.scan_seconds, self.scan)),
            asyncio.ensure_future(self._health_loop()),
        ]
        waiters = [asyncio.ensure_future(self._stop.wait())]
        if stop is not None:
            waiters.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await self._close()

    def shutdown(self) -> None:
        self._stop.set()

    async def _close(self) -> None:
        self._stop.set()  # the loops end at their next turn even if a cancellation is lost
        await cancel_until_done(self._tasks)
        await asyncio.gather(
            *(self._drop(unit, release=True, reason="shutting down") for unit in list(self.units))
        )
        if self._memory_unit is not None:
            await self._memory_unit.stop()
            await _db(health.forget)(self._memory_unit.health_keys())
        await self.dispatcher.drain(timeout=10)
        with contextlib.suppress(Exception):
            if hasattr(self.leases, "leave"):
                await self.leases.leave()
        self.dispatcher.close()

    async def _every(self, seconds: float, step) -> None:
        while not self._stop.is_set():
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "broker stream supervisor step failed", extra={"step": step.__name__}
                )
            await asyncio.sleep(seconds)

    # ---- leases --------------------------------------------------------------------------

    async def renew(self) -> None:
        owned = [unit for unit in self.units if unit in self.renewed_at]
        if not owned:
            return
        sent = time.monotonic()
        renewed = await self.leases.renew(owned, ttl=self.lease_seconds)
        lost = []
        for unit in owned:
            if unit in renewed:
                self.renewed_at[unit] = sent
            elif unit in self.units:
                logger.warning("broker stream lease lost", extra={"unit": unit})
                lost.append(self._drop(unit, release=False, reason="lease lost"))
        await asyncio.gather(*lost)

    async def enforce_fence(self) -> None:
        """Stop every unit whose lease may have expired (no renewal for fence_seconds)."""
        now = time.monotonic()
        drops = []
        for unit, renewed in list(self.renewed_at.items()):
            if now - renewed > self.fence_seconds and unit in self.units:
                logger.warning("broker stream lease not renewed in time", extra={"unit": unit})
                drops.append(self._drop(unit, release=True, reason="lease not renewed"))
        for unit, runner in list(self.units.items()):
            task = getattr(runner, "task", None)
            if task is not None and task.done():
                drops.append(self._drop(unit, release=True, reason="stopped"))
        # All at once: one slow close must not delay fencing the others.
        await asyncio.gather(*drops)

    async def _drop(self, unit: str, *, release: bool, reason: str) -> None:
        runner = self.units.pop(unit, None)
        self.renewed_at.pop(unit, None)
        self.started_at.pop(unit, None)
        if runner is None:
            return
        await runner.stop()
        with contextlib.suppress(Exception):
            await _db(health.forget)(runner.health_keys())
        if release:
            with contextlib.suppress(Exception):
                await self.leases.release(unit)
        logger.info("broker stream stopped", extra={"unit": unit, "reason": reason})

    # ---- discovery ------------------------------------------------------------------------

    def _paper_units(self) -> list[str]:
        if self.paper_mode != paper_events.REDIS:
            return []
        return [f"{PAPER_PREFIX}{p}" for p in range(paper_events.partitions())]

    async def scan(self) -> None:
        candidates = await _db(xts_candidates)()
        # Owned XTS units: session gone -> stop; session renewed -> hand the new token over.
        for unit, runner in list(self.units.items()):
            if not unit.startswith(XTS_PREFIX):
                continue
            assert isinstance(runner, _XtsUnit)
            identity = candidates.get(runner.account_id)
            if identity is None:
                await self._drop(unit, release=True, reason="no live broker session")
            elif identity != runner.identity:
                runner.update(await _db(load_stream_session)(runner.account_id))
        paper = self._paper_units()
        xts = [f"{XTS_PREFIX}{a}" for a in sorted(candidates)]
        self.live_processes = await self.leases.heartbeat(ttl=self.lease_seconds)
        paper_share = fair_share(len(paper), self.live_processes, self.capacity)
        xts_share = fair_share(len(xts), self.live_processes, self.capacity - paper_share)
        # Each kind balanced on its own: a paper partition carries a share of every paper
        # account's events, an XTS unit one account's. Moving a partition costs nothing (its
        # cursor is stored), moving an XTS stream a reconnect and a resync: one unit of slack.
        for wanted, prefix, share, slack in (
            (paper, PAPER_PREFIX, paper_share, 0),
            (xts, XTS_PREFIX, xts_share, 1),
        ):
            held = [unit for unit in self.units if unit.startswith(prefix)]
            room = share - len(held)
            if room > 0:
                free = [unit for unit in wanted if unit not in self.units]
                await self._acquire(free, room, candidates)
                continue
            # Above our share (another process joined): hand some back, the most recently
            # started first (the others' streams have been up longest).
            newest_first = sorted(held, key=lambda u: self.started_at.get(u, 0), reverse=True)
            for unit in newest_first[: to_hand_back(len(held), share, slack=slack)]:
                await self._drop(unit, release=True, reason="rebalancing")

    async def _acquire(self, free: list[str], room: int, candidates: dict[int, str]) -> None:
        if not free:
            return
        sent = time.monotonic()
        acquired, taken_over = await self.leases.acquire(free, ttl=self.lease_seconds, limit=room)
        for unit in acquired[:room]:
            self.renewed_at[unit] = sent
            self.started_at[unit] = sent
            runner = await self._start(unit)
            if runner is None:
                self.renewed_at.pop(unit, None)
                self.started_at.pop(unit, None)
                await self.leases.release(unit)
                continue
            self.units[unit] = runner
            if unit in taken_over:
                self.takeovers += 1
                metrics.inc("broker_stream_lease_takeovers_total", unit=unit.split(":")[0])
            logger.info(
                "broker stream started", extra={"unit": unit, "takeover": unit in taken_over}
            )
        for unit in acquired[room:]:
            await self.leases.release(unit)
        if acquired:
            self.health_changed()

    async def _start(self, unit: str):
        kind, _, ident = unit.partition(":")
        if kind + ":" == PAPER_PREFIX:
            return _PaperUnit(self, unit, int(ident))
        session = await _db(load_stream_session)(int(ident))
        if session is None:
            return None
        return _XtsUnit(self, session)

    # ---- health ---------------------------------------------------------------------------

    def paper_event_seen(self, account_id: int) -> None:
        self._paper_events[account_id] = _now().isoformat()
        self.health_changed()  # written at most every 0.2 s however many events

    def health_changed(self) -> None:
        self._health_dirty.set()

    def health_records(self) -> dict[str, health.StreamHealth]:
        records: dict[str, health.StreamHealth] = {}
        for runner in list(self.units.values()):
            records.update(runner.health())
        if self._memory_unit is not None:
            records.update(self._memory_unit.health())
        return records

    async def _health_loop(self) -> None:
        """Health on every change (at most every 0.2 s) and at least every scan."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._health_dirty.wait(), timeout=self.scan_seconds)
            self._health_dirty.clear()
            events, self._paper_events = self._paper_events, {}
            try:
                await _db(health.write)(self.health_records(), last_paper_events=events)
            except Exception:
                logger.warning("writing broker stream health failed", exc_info=True)
            await _db(self.dispatcher.metrics.flush)()
            await asyncio.sleep(0.2)
