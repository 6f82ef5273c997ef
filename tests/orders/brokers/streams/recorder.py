"""A handler and a resync of the tests' own (settings BROKER_EVENT_HANDLER /
BROKER_RESYNC_HANDLER point here): they record what they receive, in Redis, so the records
of another process (a run_broker_streams under test) are seen too. The transport is under
test here, not the desk's reaction to an event."""

from __future__ import annotations

import json
import os
import threading
import time

import redis
from django_redis import get_redis_connection

from orders.brokers.event_codec import decode_event, encode_event

EVENTS_KEY = "test-recorder:events"
RUNS_KEY = "test-recorder:runs"
RESYNCS_KEY = "test-recorder:resyncs"
_lock = threading.Lock()
# Handler calls of one account must never overlap (the dispatcher runs them one at a time).
_running: set[int] = set()
overlaps: list[int] = []


_clients: dict[str, redis.Redis] = {}


def _redis():
    """The test Redis: TEST_RECORDER_REDIS_URL in a process without Redis of its own (the
    embedded server under test), else the cache's."""
    url = os.environ.get("TEST_RECORDER_REDIS_URL", "")
    if not url:
        return get_redis_connection("default")
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url)
    return _clients[url]


def record_event(event) -> None:
    with _lock:
        if event.account_id in _running:
            overlaps.append(event.account_id)
        _running.add(event.account_id)
    try:
        delay = float(os.environ.get("TEST_RECORDER_DELAY", "0") or 0)
        if delay:
            time.sleep(delay)
        entry = {"event": encode_event(event), "pid": os.getpid(), "at": time.time()}
        _redis().rpush(EVENTS_KEY, json.dumps(entry))
    finally:
        with _lock:
            _running.discard(event.account_id)


class _RecordingRuns:
    """`record_event`, offering `many` (a run of one account's queued events at once, as the
    desk's handler does): each run's kinds are recorded, then its events one by one."""

    def __call__(self, event) -> None:
        record_event(event)

    def many(self, events) -> None:
        _redis().rpush(RUNS_KEY, json.dumps([str(event.kind) for event in events]))
        for event in events:
            record_event(event)


record_event_runs = _RecordingRuns()

FINISHES_KEY = "test-recorder:finishes"


class _RecordingSplit(_RecordingRuns):
    """`record_event_runs` offering `act` and `finish` too (as the desk's handler does):
    `act` records the run and leaves "pnl" for its account; `finish` records when, on which
    thread and with what it ran."""

    def act(self, events) -> dict[int, set[str]]:
        self.many(events)
        return {event.account_id: {"pnl"} for event in events}

    def finish(self, account_id: int, left) -> None:
        entry = {
            "account_id": account_id,
            "left": sorted(left),
            "thread": threading.current_thread().name,
            "at": time.time(),
        }
        _redis().rpush(FINISHES_KEY, json.dumps(entry))


record_event_split = _RecordingSplit()


def finishes() -> list[dict]:
    return [json.loads(raw) for raw in _redis().lrange(FINISHES_KEY, 0, -1)]


def runs() -> list[list[str]]:
    return [json.loads(raw) for raw in _redis().lrange(RUNS_KEY, 0, -1)]


def record_resync(account_id: int, *, reason: str) -> None:
    entry = {"account_id": account_id, "reason": reason, "pid": os.getpid(), "at": time.time()}
    _redis().rpush(RESYNCS_KEY, json.dumps(entry))


def fail_on_purpose(event) -> None:
    raise RuntimeError("a handler that fails")


def recorded() -> list[dict]:
    entries = [json.loads(raw) for raw in _redis().lrange(EVENTS_KEY, 0, -1)]
    for entry in entries:
        entry["event"] = decode_event(entry["event"])
    return entries


def events(account_id: int | None = None, kind: str | None = None) -> list:
    found = [entry["event"] for entry in recorded()]
    return [
        e
        for e in found
        if (account_id is None or e.account_id == account_id) and (kind is None or e.kind == kind)
    ]


def resyncs(account_id: int | None = None) -> list[dict]:
    entries = [json.loads(raw) for raw in _redis().lrange(RESYNCS_KEY, 0, -1)]
    return [e for e in entries if account_id is None or e["account_id"] == account_id]


def clear() -> None:
    _redis().delete(EVENTS_KEY, RESYNCS_KEY, RUNS_KEY, FINISHES_KEY)
    overlaps.clear()
