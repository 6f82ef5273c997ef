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
            return True

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

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self._retry_at = time.monotonic() + settings.RATE_LIMIT_STORE_RETRY_SECONDS
            if self.down:
                return
            self.down = True
        logger.warning(
            "degraded: Redis is unavailable; until it answers again this process keeps the "
            "rate limits in its own buckets, authenticates API tokens and keys from the "
            "database and drops metrics, asking Redis again every %s s",
            settings.RATE_LIMIT_STORE_RETRY_SECONDS,
            exc_info=error,
            extra={"degraded": "redis"},
        )

    def answered(self) -> None:
        if not self.down:  # the usual case: no lock taken
            return
        with self._lock:
            if not self.down:
                return
            self.down = False
        logger.info(
            "Redis answers again; shared rate limits, the token cache and metrics in use",
            extra={"degraded": "redis"},
        )


store_outage = RedisOutage()
