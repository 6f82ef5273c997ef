"""Leases: exactly one process runs each stream (an XTS session, a paper event partition).

Full stack (`RedisLeases`): a lease is a Redis key `broker-stream-lease:<unit>` holding its
owner's id, set with NX and a TTL of BROKER_STREAM_LEASE_SECONDS, renewed by its owner (a
compare-and-expire script) every scan. Fenced: the owner notes when it SENT each successful
renewal and closes the stream once TTL - margin has passed since without another one, i.e.
before the key can expire and another process take it; writes that must come from the
owner (a paper partition's cursor) are compare-and-set scripts that refuse a stale owner.
A process that dies stops renewing: its keys expire within the TTL and the next scan of a
live process takes them (a "takeover", counted). Processes announce themselves in a sorted
set with the same TTL, so each can aim at its fair share of the streams.

Embedded (`LocalLeases`): one process, every lease is granted.
"""

from __future__ import annotations

import os
import secrets
import socket
import time

import redis.asyncio
from django.conf import settings
from django.core.cache import cache

from trading_site.core.leases import RELEASE_SCRIPT, RENEW_SCRIPT

_FENCED_SET = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('set', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


def new_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def lease_key(unit: str) -> str:
    return cache.make_key(f"broker-stream-lease:{unit}")


def _last_owner_key(unit: str) -> str:
    return cache.make_key(f"broker-stream-last-owner:{unit}")


def _processes_key() -> str:
    return cache.make_key("broker-stream-processes")


class LocalLeases:
    """One process owns everything (the embedded default)."""

    def __init__(self, owner: str | None = None):
        self.owner = owner or new_owner_id()
        self._held: set[str] = set()
        self._values: dict[str, str] = {}

    async def acquire(
        self, units: list[str], *, ttl: float, limit: int | None = None
    ) -> tuple[list[str], list[str]]:
        """(acquired, taken over from another owner)"""
        fresh = [unit for unit in units if unit not in self._held][:limit]
        self._held.update(fresh)
        return fresh, []

    async def renew(self, units: list[str], *, ttl: float) -> set[str]:
        return {unit for unit in units if unit in self._held}

    async def release(self, unit: str) -> None:
        self._held.discard(unit)

    async def fenced_set(self, unit: str, key: str, value: str) -> bool:
        if unit not in self._held:
            return False
        self._values[key] = value
        return True

    async def get(self, key: str) -> str | None:
        return self._values.get(key)

    async def heartbeat(self, *, ttl: float) -> int:
        return 1

    async def close(self) -> None:
        self._held.clear()


class RedisLeases:
    def __init__(self, client=None, owner: str | None = None):
        if client is None:
            client = redis.asyncio.Redis.from_url(
                settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
            )
        self.owner = owner or new_owner_id()
        self.bind(client)

    def bind(self, client) -> None:
        """Talk to Redis through `client` (tests cut a process off Redis this way)."""
        self.redis = client
        self._renew = client.register_script(RENEW_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)
        self._fenced_set = client.register_script(_FENCED_SET)

    async def acquire(
        self, units: list[str], *, ttl: float, limit: int | None = None
    ) -> tuple[list[str], list[str]]:
        """Take free leases among `units`, at most `limit`: (acquired, the ones another
        process held last: a takeover)."""
        if not units:
            return [], []
        holders = await self.redis.mget([lease_key(unit) for unit in units])
        free = [unit for unit, holder in zip(units, holders, strict=True) if holder is None]
        free = free[:limit]
        if not free:
            return [], []
        pipe = self.redis.pipeline(transaction=False)
        for unit in free:
            pipe.set(lease_key(unit), self.owner, nx=True, px=int(ttl * 1000))
        results = await pipe.execute()
        acquired = [unit for unit, ok in zip(free, results, strict=True) if ok]
        if not acquired:
            return [], []
        pipe = self.redis.pipeline(transaction=False)
        for unit in acquired:
            pipe.getset(_last_owner_key(unit), self.owner)
        previous = await pipe.execute()
        taken_over = [
            unit
            for unit, before in zip(acquired, previous, strict=True)
            if before is not None and before.decode() != self.owner
        ]
        return acquired, taken_over

    async def renew(self, units: list[str], *, ttl: float) -> set[str]:
        """The units whose lease is still ours (now extended by `ttl`)."""
        if not units:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for unit in units:
            await self._renew(
                keys=[lease_key(unit)], args=[self.owner, int(ttl * 1000)], client=pipe
            )
        results = await pipe.execute()
        return {unit for unit, ok in zip(units, results, strict=True) if ok}

    async def release(self, unit: str) -> None:
        await self._release(keys=[lease_key(unit)], args=[self.owner])

    async def fenced_set(self, unit: str, key: str, value: str) -> bool:
        """Set `key` only while we hold `unit`'s lease."""
        return bool(await self._fenced_set(keys=[lease_key(unit), key], args=[self.owner, value]))

    async def get(self, key: str) -> str | None:
        value = await self.redis.get(key)
        return value.decode() if value is not None else None

    async def heartbeat(self, *, ttl: float) -> int:
        """Announce this process; the number of live stream processes (ourselves included)."""
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(_processes_key(), {self.owner: now})
        pipe.zremrangebyscore(_processes_key(), "-inf", now - ttl)
        pipe.zcard(_processes_key())
        _, _, live = await pipe.execute()
        return max(1, int(live))

    async def leave(self) -> None:
        await self.redis.zrem(_processes_key(), self.owner)

    async def close(self) -> None:
        await self.redis.aclose()
