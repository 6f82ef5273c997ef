"""The one token-bucket rate limiter: API limits per user and group, login, broker calls,
and the frames of one WebSocket connection (`TokenBucket`, held by its owner).

A bucket holds up to `capacity` tokens and refills at `refill_per_second`; each request takes
one. Full stack: a Lua script in Redis does read-refill-take-write atomically with Redis's own
clock, so every process shares one bucket. Embedded: this process's buckets
(`embedded_buckets`, a `LocalBuckets`: the embedded mode is one process).

When the shared store cannot be read (Redis down, silent past its socket timeout, or any other
failure of the call), `take_group_token` never lets the request through unlimited: it takes
the token from a bucket of this process (`group_buckets`: same key, same capacity and refill as
the group's; at most PROCESS_BUCKETS_MAX_KEYS buckets, the least recently used forgotten
first, so a caller rotating keys cannot grow it). After a failure the process stops asking
Redis for RATE_LIMIT_STORE_RETRY_SECONDS, then one call asks again (`store_outage`, the circuit
breaker that the token cache and the metrics share, `trading_site.core.redis_breaker`: a Redis
that accepts connections and never answers would otherwise hold every request for
REDIS_SOCKET_TIMEOUT, one after another): the shared buckets are back within that period of
Redis's return. Each process logs the outage once when it starts and once when it ends.
What that means for each caller:
- the API's per-user groups (`UserRateLimit`: read, default, orders): the same limits, the
  same 429, Retry-After and X-RateLimit-* headers. A trader's normal use within the limit is
  never refused: a process's bucket starts full and is as large as the shared one;
- login (`accounts.services.check_login_rate`: login_user and login_ip): guesses past the
  limit are refused as usual;
- alert webhooks (`orders.alerts.services`): wrong secrets per source address
  (webhook_bad_secret), so an unauthenticated sender writes at most a bucket of BAD_SECRET
  rows per process, and alerts per webhook (webhook).
With N processes an outage allows up to N times a bucket in all (each process has its own):
bounded, where failing open was not, and nothing fails closed. Refusing instead (a limiter
that answers 429 to everyone while Redis restarts) would turn a blip into an outage of order
placement. Broker calls have their own fallback at a share of the broker's limit
(`orders.brokers.sessions`, `take_process_token`), because there the limit is the broker's.

Headers on every authenticated API response (RateLimitHeadersMiddleware):
- X-RateLimit-Limit: the bucket's capacity;
- X-RateLimit-Remaining: whole tokens left after this request;
- X-RateLimit-Reset: seconds until the bucket is full again (0 when it is full).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import BaseThrottle

from trading_site.core.errors import RateLimitExceeded
from trading_site.core.redis_breaker import store_outage

_KEY_PREFIX = "rl:"

# KEYS[1] bucket hash; ARGV capacity, refill per second. Returns {allowed, tokens-as-string}.
_LUA_TAKE_TOKEN = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(capacity, tokens + elapsed * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
local ttl = 60
if rate > 0 then ttl = math.ceil((capacity - tokens) / rate) + 1 end
redis.call('EXPIRE', KEYS[1], ttl)
return {allowed, tostring(tokens)}
"""


@dataclass(frozen=True)
class BucketResult:
    allowed: bool
    remaining: int
    limit: int
    reset_seconds: float
    retry_after: float

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_seconds)),
        }


def _result(*, allowed: bool, tokens: float, capacity: int, rate: float) -> BucketResult:
    missing = max(0.0, capacity - tokens)
    if rate > 0:
        reset = missing / rate
        retry = 0.0 if allowed else max(0.0, (1 - tokens) / rate)
    else:
        reset = 0.0 if missing == 0 else 3600.0
        retry = 0.0 if allowed else 3600.0
    return BucketResult(
        allowed=allowed,
        remaining=max(0, int(math.floor(tokens))),
        limit=capacity,
        reset_seconds=reset,
        retry_after=retry,
    )


def _check_bucket(capacity: int, refill_per_second: float) -> None:
    if capacity < 1:
        raise ValueError("capacity must be at least 1")
    if refill_per_second < 0:
        raise ValueError("refill_per_second must not be negative")


def _refill_and_take(
    tokens: float, elapsed: float, *, capacity: int, rate: float
) -> tuple[bool, float]:
    """(allowed, tokens left): the bucket refilled for `elapsed` seconds, then one taken."""
    tokens = min(float(capacity), tokens + max(0.0, elapsed) * rate)
    if tokens >= 1:
        return True, tokens - 1
    return False, tokens


class TokenBucket:
    """A bucket of one owner that lives on one thread or event loop (a WebSocket
    connection): plain attributes, no lock and no shared store, so taking a token for every
    frame costs no round trip."""

    def __init__(
        self,
        *,
        capacity: int,
        refill_per_second: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_bucket(capacity, refill_per_second)
        self.capacity = capacity
        self.refill_per_second = refill_per_second
        self._clock = clock
        self._tokens = float(capacity)
        self._at = clock()

    def take(self) -> bool:
        """Take one token; False (nothing taken) when the bucket is empty."""
        now = self._clock()
        allowed, self._tokens = _refill_and_take(
            self._tokens, now - self._at, capacity=self.capacity, rate=self.refill_per_second
        )
        self._at = now
        return allowed


def _redis_script():
    from django_redis import get_redis_connection

    # Script objects are cheap (a SHA1) and run EVALSHA, loading the script on first use.
    return get_redis_connection("default").register_script(_LUA_TAKE_TOKEN)


def shared_bucket_key(key: str) -> str:
    """The Redis key of the shared bucket `key`: the cache's own prefix, so cache.clear()
    and key listings include buckets."""
    return cache.make_key(_KEY_PREFIX + key)


def take_token(key: str, *, capacity: int, refill_per_second: float) -> BucketResult:
    """Take one token from the bucket `key`, atomically across every process sharing it."""
    if settings.EMBEDDED:
        return embedded_buckets.take(
            _KEY_PREFIX + key, capacity=capacity, refill_per_second=refill_per_second
        )
    _check_bucket(capacity, refill_per_second)
    allowed, tokens = _redis_script()(
        keys=[shared_bucket_key(key)], args=[capacity, refill_per_second]
    )
    return _result(
        allowed=bool(int(allowed)), tokens=float(tokens), capacity=capacity, rate=refill_per_second
    )


class LocalBuckets:
    """Token buckets in this process's memory, for when the shared store cannot be asked.

    One lock makes each take atomic across the process's threads. At most `max_keys`
    buckets are kept: past that the least recently used is forgotten (it starts full if its
    key comes back), so memory stays bounded however many keys callers make up.
    """

    def __init__(self, *, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def take(self, key: str, *, capacity: int, refill_per_second: float) -> BucketResult:
        """Take one token from the bucket `key`; the answer has the shared bucket's shape."""
        _check_bucket(capacity, refill_per_second)
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.pop(key, (float(capacity), now))
            allowed, tokens = _refill_and_take(
                tokens, now - at, capacity=capacity, rate=refill_per_second
            )
            self._buckets[key] = (tokens, now)  # re-inserted: now the most recently used
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return _result(allowed=allowed, tokens=tokens, capacity=capacity, rate=refill_per_second)

    def __len__(self) -> int:
        return len(self._buckets)


# About 300 bytes a bucket: a few MB at most, and far more keys than one process sees in
# the minutes of an outage (every active user's groups, every address trying to log in).
PROCESS_BUCKETS_MAX_KEYS = 10_000

# Two stores while Redis is down: the broker calls' fallback is never evicted by keys that
# API or login callers (an attacker among them) make up during an outage. The embedded mode
# (no Redis) keeps every bucket in a third.
process_buckets = LocalBuckets(max_keys=PROCESS_BUCKETS_MAX_KEYS)
group_buckets = LocalBuckets(max_keys=PROCESS_BUCKETS_MAX_KEYS)
embedded_buckets = LocalBuckets(max_keys=PROCESS_BUCKETS_MAX_KEYS)


def take_process_token(key: str, *, capacity: int, refill_per_second: float) -> BucketResult:
    """Take one token from a bucket of this process alone (`process_buckets`): the
    fallback while the shared store is down."""
    return process_buckets.take(key, capacity=capacity, refill_per_second=refill_per_second)


def parse_rate(spec: str) -> tuple[int, float]:
    """'capacity/refill-per-second' (e.g. '60/1') -> (60, 1.0)."""
    try:
        capacity_text, rate_text = spec.split("/", 1)
        capacity, rate = int(capacity_text), float(rate_text)
    except ValueError as exc:
        raise ValueError(
            f"rate limit {spec!r} must look like 'capacity/refill_per_second'"
        ) from exc
    if capacity < 1 or rate < 0:
        raise ValueError(f"rate limit {spec!r}: capacity >= 1 and refill >= 0")
    return capacity, rate


def group_rate(group: str) -> tuple[int, float]:
    limits = settings.RATE_LIMITS
    return parse_rate(limits.get(group) or limits["default"])


def take_group_token(group: str, key: str) -> BucketResult:
    """Take a token from a settings.RATE_LIMITS group's bucket: the shared one, or this
    process's while the shared store cannot be read (see the module docstring)."""
    capacity, rate = group_rate(group)
    if not store_outage.should_ask():
        return group_buckets.take(key, capacity=capacity, refill_per_second=rate)
    try:
        return store_outage.call(lambda: take_token(key, capacity=capacity, refill_per_second=rate))
    except Exception:  # any failure to read the store: limited here, never unlimited
        return group_buckets.take(key, capacity=capacity, refill_per_second=rate)


class UserRateLimit(BaseThrottle):
    """DRF throttle: one bucket per user and endpoint group (`view.rate_limit_group`).

    Views name their group with `rate_limit_group` ("orders", "read", "default"); a view
    without one counts as "read" for GET/HEAD/OPTIONS and "default" otherwise. The result is
    kept on the request for RateLimitHeadersMiddleware.
    """

    def allow_request(self, request, view) -> bool:
        user = getattr(request, "user", None)
        if not settings.RATE_LIMIT_ENABLED or user is None or not user.is_authenticated:
            return True
        group = getattr(view, "rate_limit_group", None) or (
            "read" if request.method in SAFE_METHODS else "default"
        )
        result = take_group_token(group, f"user:{user.pk}:{group}")
        # The Django request outlives DRF's wrapper: the middleware reads it there.
        request._request.rate_limit_result = result
        if not result.allowed:
            raise RateLimitExceeded(
                retry_after=math.ceil(result.retry_after), limit_headers=result.headers()
            )
        return True

    def wait(self) -> float | None:
        return None


class RateLimitHeadersMiddleware:
    """Adds the X-RateLimit-* headers of the request's bucket to its response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        result: BucketResult | None = getattr(request, "rate_limit_result", None)
        if result is not None:
            for header, value in result.headers().items():
                response.setdefault(header, value)
        return response
