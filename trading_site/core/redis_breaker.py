"""The circuit breaker of the calls a request makes to Redis (the cache's "default"): the
rate limiter's buckets (`trading_site.core.api.ratelimit`), the cached API sessions and keys
(`accounts.cached_rows`) and the metrics' writes (`trading_site.core.metrics`).

A Redis that accepts connections and never answers holds each call for REDIS_SOCKET_TIMEOUT.
Each of these callers already has a fallback (this process's buckets, the database, dropping
the samples), but without a breaker every request would wait a timeout for each of them, one
request after another. After a call fails with Redis unavailable, the process stops asking
for RATE_LIMIT_STORE_RETRY_SECONDS, then lets one call ask again: a hung Redis costs about one
socket timeout per process per period, and everything is back on Redis within one period of
its return. One breaker for all of them, since they ask one Redis: a failure seen by any of
them stands for the others. It is per process (each process finds the outage for itself) and
logs the outage once when it starts and once when it ends.

Writes that keep other processes from reading a stale copy (a revocation's tombstone, a
dropped cache entry) do not ask the breaker: they always try Redis, since another process
whose Redis answers would otherwise read that copy on.

What such a write could not do during the outage must be done before the process reads
Redis again: Redis may have hung with its data and still hold the copies. Callers register
recovery hooks (`on_recovery`, the token cache's); when Redis is due to be asked again, the
hooks run first, as the probe, and the breaker closes only once they all succeeded: the
caller whose turn it was meanwhile gets its fallback, as do the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# What a call to Redis raises when it is down, unreachable or silent past its socket timeout.
STORE_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    RedisError,
    ConnectionInterrupted,
    OSError,
)


class RedisOutage:
    """Whether this process last found Redis unavailable, and when it asks again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.down = False
        self._retry_at = 0.0
        self._hooks: list[Callable[[float | None], None]] = []
        # Only one thread runs the hooks and closes the outage.
        self._closing = threading.Lock()
        # time.time() of this process's last answer from Redis, and the one before the open
        # outage: no Redis call of this process failed before it.
        self._answered_at: float | None = None
        self._answered_before_outage: float | None = None

    def on_recovery(self, hook: Callable[[float | None], None]) -> None:
        """Run `hook(answered_before)` once Redis answers again after an outage, before this
        process asks it anything else; `answered_before` is the time (time.time()) of this
        process's last answer before the outage, or None. It calls Redis directly (not
        through `call`); if it raises, the outage stays open (and it runs again next time)."""
        self._hooks.append(hook)

    def should_ask(self) -> bool:
        """Whether this call asks Redis: always while it answers; during an outage one call
        per period, the others meanwhile on their fallback."""
        if not self.down:  # the usual case: no lock taken
            return True
        with self._lock:
            now = time.monotonic()
            if self.down and now < self._retry_at:
                return False
            self._retry_at = now + settings.RATE_LIMIT_STORE_RETRY_SECONDS
            if not self._hooks:
                return True  # this call is the probe
        return self._close()

    def call(self, ask: Callable[[], _T]) -> _T:
        """`ask()`'s answer, the outage noted: opened when it raises one of
        STORE_UNAVAILABLE_ERRORS (re-raised, as is any other error), closed when it answers."""
        try:
            answer = ask()
        except STORE_UNAVAILABLE_ERRORS as exc:
            self.failed(exc)
            raise
        self.answered()
        return answer

    def reset(self) -> None:
        """No outage open, Redis asked on the next call (the tests, between cases)."""
        with self._lock:
            self.down = False
            self._retry_at = 0.0
            self._answered_at = self._answered_before_outage = None

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self._retry_at = time.monotonic() + settings.RATE_LIMIT_STORE_RETRY_SECONDS
            if self.down:
                return
            self.down = True
            self._answered_before_outage = self._answered_at
        logger.warning(
            "degraded: Redis is unavailable; until it answers again this process keeps the "
            "rate limits in its own buckets, authenticates API tokens and keys from the "
            "database and drops metrics, asking Redis again every %s s",
            settings.RATE_LIMIT_STORE_RETRY_SECONDS,
            exc_info=error,
            extra={"degraded": "redis"},
        )

    def answered(self) -> None:
        self._answered_at = time.time()
        if self.down:
            self._close()

    def _close(self) -> bool:
        """Run the recovery hooks, then end the outage; whether it ended."""
        if not self._closing.acquire(blocking=False):
            return False  # another thread is closing it; until then, the fallback
        try:
            if not self.down:
                return True
            try:
                for hook in self._hooks:
                    hook(self._answered_before_outage)
            except STORE_UNAVAILABLE_ERRORS as exc:
                self.failed(exc)
                return False
            except Exception:
                logger.exception("Redis answers again, but its recovery failed; outage kept")
                return False
            with self._lock:
                self.down = False
        finally:
            self._closing.release()
        logger.info(
            "Redis answers again; shared rate limits, the token cache and metrics in use",
            extra={"degraded": "redis"},
        )
        return True


store_outage = RedisOutage()
