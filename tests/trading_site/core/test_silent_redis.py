"""A Redis that accepts connections and then never answers (a hung server, a network that
drops the replies) fails the cache's calls within the settings' socket timeouts
(REDIS_SOCKET_TIMEOUT), and a lease then falls back to this process as it does for a Redis
that refuses, instead of holding a request, a lease or a cycle without end."""

from __future__ import annotations

import threading
import time

import pytest
from django.conf import settings
from django_redis.cache import RedisCache

from trading_site.core import leases
from trading_site.core.redis_breaker import STORE_UNAVAILABLE_ERRORS

pytestmark = pytest.mark.skipif(settings.EMBEDDED, reason="the full stack's Redis")


def _timed(call, *, give_up: float = 20) -> tuple[float, BaseException | None]:
    """How long `call` took and what it raised, run in a thread given up on after
    `give_up` seconds (a call with no timeout would hang the test, not fail it)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # the failure is the point
            outcome.append(exc)
        else:
            outcome.append(None)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=give_up)
    assert outcome, f"still waiting for a silent Redis after {give_up} s"
    return time.monotonic() - started, outcome[0]


def test_the_settings_bound_every_cache_call_to_redis():
    options = settings.CACHES["default"]["OPTIONS"]
    assert 0 < options["SOCKET_CONNECT_TIMEOUT"] <= 5
    assert 0 < options["SOCKET_TIMEOUT"] <= 10


def test_a_cache_call_to_a_silent_redis_fails_within_the_socket_timeout(silent_redis):
    silent = RedisCache(silent_redis, {**settings.CACHES["default"], "LOCATION": silent_redis})
    limit = settings.CACHES["default"]["OPTIONS"]["SOCKET_TIMEOUT"]
    elapsed, error = _timed(lambda: silent.get("anything"))
    assert isinstance(error, STORE_UNAVAILABLE_ERRORS), error
    assert elapsed < limit + 2


def test_a_lease_falls_back_to_this_process_when_redis_goes_silent(silent_redis, settings):
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": silent_redis},
    }
    limit = settings.CACHES["default"]["OPTIONS"]["SOCKET_TIMEOUT"]
    held: list[leases.Lease] = []

    def take() -> None:
        with leases.held("silent-redis-test", ttl=30) as lease:
            held.append(lease)

    elapsed, error = _timed(take)
    assert error is None
    assert [lease.backend for lease in held] == [leases.DEGRADED]
    assert elapsed < limit + 2
