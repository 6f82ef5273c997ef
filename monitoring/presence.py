"""Which users have an open WebSocket (SPEC 3 'presence'), with a time-to-live.

One entry per connection, so several tabs work and a user stays present while at least one
is open; each entry expires on its own (PRESENCE_TTL_SECONDS) unless refreshed, so a crashed
web process does not leave users "connected" forever. A connect or disconnect writes its entry
at once; the periodic refresh is one batched write per web process for all of its open
connections (`refresh_connections`, driven by monitoring.consumers), not one per connection.

The same entries cap a user's open connections (WS_MAX_CONNECTIONS_PER_USER,
`claim_connection`): a connection is counted from its claim until its disconnect, or until its
entry expires when the process holding it died, so a dead process frees its slots within the
TTL.

Full stack: two Redis sorted sets scored by expiry time (one per user: connection ids; one
global: user ids), shared by every web process and read by the dispatcher. Embedded: the
same structure in this process's memory (there is only one process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from django.conf import settings

_PREFIX = "td:presence:"
# Connections per pipeline in a batched refresh: bounds one round trip's size.
_BATCH = 2000
_USERS_KEY = _PREFIX + "users"


def _user_key(user_id: int) -> str:
    return f"{_PREFIX}user:{int(user_id)}"


def _ttl() -> int:
    return int(settings.PRESENCE_TTL_SECONDS)


# KEYS[1] the user's connections, KEYS[2] the users; ARGV now, expiry, limit (0: none),
# connection id, user id, key TTL. Expired entries go first, so only live ones count; one
# script, so concurrent claims from several processes cannot all pass the count. Returns 1
# (recorded) or 0 (limit reached, nothing written).
_CLAIM_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local limit = tonumber(ARGV[3])
if limit > 0 and not redis.call('ZSCORE', KEYS[1], ARGV[4])
    and redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[6])
-- The user's score only grows while any tab refreshes it (GT keeps the latest expiry).
redis.call('ZADD', KEYS[2], 'GT', ARGV[2], ARGV[5])
return 1
"""


class _RedisPresence:
    def _redis(self):
        from django_redis import get_redis_connection

        return get_redis_connection("default")

    def claim(self, user_id: int, connection_id: str, limit: int) -> bool:
        now = time.time()
        claim = self._redis().register_script(_CLAIM_SCRIPT)
        recorded = claim(
            keys=[_user_key(user_id), _USERS_KEY],
            args=[now, now + _ttl(), limit, connection_id, int(user_id), _ttl() + 5],
        )
        return bool(int(recorded))

    def touch(self, user_id: int, connection_id: str) -> None:
        self.claim(user_id, connection_id, 0)

    def touch_many(self, entries: list[tuple[int, str]]) -> None:
        """The same writes as `touch` for every (user, connection) entry, in one round trip
        per chunk (no MULTI: each user's entries stand on their own)."""
        now = time.time()
        expires = now + _ttl()
        redis = self._redis()
        for start in range(0, len(entries), _BATCH):
            by_user: dict[int, dict[str, float]] = {}
            for user_id, connection_id in entries[start : start + _BATCH]:
                by_user.setdefault(int(user_id), {})[connection_id] = expires
            pipe = redis.pipeline(transaction=False)
            for user_id, connections in by_user.items():
                pipe.zadd(_user_key(user_id), connections)
                pipe.zremrangebyscore(_user_key(user_id), "-inf", now)
                pipe.expire(_user_key(user_id), _ttl() + 5)
            pipe.zadd(_USERS_KEY, {str(u): expires for u in by_user}, gt=True)
            pipe.execute()

    def remove(self, user_id: int, connection_id: str) -> None:
        redis = self._redis()
        now = time.time()
        pipe = redis.pipeline()
        pipe.zrem(_user_key(user_id), connection_id)
        pipe.zremrangebyscore(_user_key(user_id), "-inf", now)
        pipe.zcard(_user_key(user_id))
        remaining = pipe.execute()[-1]
        if not remaining:
            redis.zrem(_USERS_KEY, str(int(user_id)))

    def is_connected(self, user_id: int) -> bool:
        return self._redis().zcount(_user_key(user_id), time.time(), "+inf") > 0

    def connection_count(self, user_id: int) -> int:
        return int(self._redis().zcount(_user_key(user_id), time.time(), "+inf"))

    def connected_user_ids(self) -> set[int]:
        redis = self._redis()
        now = time.time()
        redis.zremrangebyscore(_USERS_KEY, "-inf", now)
        return {int(u) for u in redis.zrangebyscore(_USERS_KEY, now, "+inf")}


class _MemoryPresence:
    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[int, dict[str, float]] = {}

    def _live(self, user_id: int, now: float) -> dict[str, float]:
        entries = self._entries.get(int(user_id), {})
        for conn in [c for c, exp in entries.items() if exp <= now]:
            del entries[conn]
        return entries

    def claim(self, user_id: int, connection_id: str, limit: int) -> bool:
        with self._lock:
            now = time.time()
            live = self._live(user_id, now)
            if limit > 0 and connection_id not in live and len(live) >= limit:
                return False
            self._entries[int(user_id)] = live
            live[connection_id] = now + _ttl()
            return True

    def touch(self, user_id: int, connection_id: str) -> None:
        self.claim(user_id, connection_id, 0)

    def touch_many(self, entries: list[tuple[int, str]]) -> None:
        with self._lock:
            expires = time.time() + _ttl()
            for user_id, connection_id in entries:
                self._entries.setdefault(int(user_id), {})[connection_id] = expires

    def remove(self, user_id: int, connection_id: str) -> None:
        with self._lock:
            entries = self._entries.get(int(user_id), {})
            entries.pop(connection_id, None)
            if not self._live(user_id, time.time()):
                self._entries.pop(int(user_id), None)

    def is_connected(self, user_id: int) -> bool:
        return self.connection_count(user_id) > 0

    def connection_count(self, user_id: int) -> int:
        with self._lock:
            return len(self._live(user_id, time.time()))

    def connected_user_ids(self) -> set[int]:
        with self._lock:
            now = time.time()
            return {u for u in list(self._entries) if self._live(u, now)}


_memory = _MemoryPresence()


def _store():
    return _memory if settings.EMBEDDED else _RedisPresence()


def claim_connection(user_id: int, connection_id: str, *, limit: int) -> bool:
    """Record one new open connection of the user unless `limit` of theirs are open already
    (in every web process); False: refused, nothing recorded. Counted and recorded at once,
    so connections opened together cannot all pass the count."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return _store().claim(user_id, connection_id, limit)


def mark_connected(user_id: int, connection_id: str) -> None:
    """Record (or refresh) one open connection of the user for another TTL (no limit: it is
    for connections already claimed)."""
    _store().touch(user_id, connection_id)


def refresh_connections(entries: Iterable[tuple[int, str]]) -> None:
    """Refresh many open connections (user id, connection id) for another TTL at once: what
    each web process does periodically for all of its connections."""
    batch = list(entries)
    if batch:
        _store().touch_many(batch)


def mark_disconnected(user_id: int, connection_id: str) -> None:
    _store().remove(user_id, connection_id)


def is_user_connected(user_id: int) -> bool:
    return _store().is_connected(user_id)


def connection_count(user_id: int) -> int:
    return _store().connection_count(user_id)


def connected_user_ids() -> set[int]:
    return _store().connected_user_ids()
