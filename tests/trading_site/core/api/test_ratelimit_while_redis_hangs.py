"""A Redis that accepts connections and never answers costs the rate limiter one socket
timeout per RATE_LIMIT_STORE_RETRY_SECONDS, not one per request: after a failed call each
process keeps the limits in its own buckets for that long, then asks Redis again, and the
shared buckets are used again once it answers."""

from __future__ import annotations

import logging
import time

import pytest
from django.conf import settings as live_settings
from django.core.cache import cache
from django_redis import get_redis_connection

from tests.factories import make_user, web_client_for
from tests.trading_site.core.conftest import BREAKER_LOGGER, assert_one_outage_logged
from tests.trading_site.core.conftest import SILENT_REDIS_TIMEOUT as TIMEOUT

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(live_settings.EMBEDDED, reason="the full stack's Redis"),
]


@pytest.fixture
def reader(settings):
    """A browser logged in (its session lives in the database, not in Redis) with three
    reads, refilled too slowly to matter. The metrics middleware's write at the end of each
    request is kept off Redis by the same breaker (test_requests_while_redis_hangs)."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "read": "3/0.001"}
    return web_client_for(make_user())


def test_requests_in_a_row_wait_one_timeout_in_all_and_stay_limited(settings, reader, hang_redis):
    settings.RATE_LIMIT_STORE_RETRY_SECONDS = 30
    hang_redis()

    started = time.monotonic()
    answers = [reader.get("/api/accounts").status_code for _ in range(6)]
    elapsed = time.monotonic() - started

    assert answers == [200, 200, 200, 429, 429, 429]
    assert TIMEOUT <= elapsed < 3 * TIMEOUT  # six timeouts one after another without it


def test_the_shared_buckets_are_used_again_after_the_cool_off(settings, reader, hang_redis, caplog):
    settings.RATE_LIMIT_STORE_RETRY_SECONDS = 2
    caplog.set_level(logging.INFO, logger=BREAKER_LOGGER)
    live = hang_redis()
    assert reader.get("/api/accounts")["X-RateLimit-Remaining"] == "2"  # this process's

    settings.CACHES = live
    within = reader.get("/api/accounts")
    time.sleep(settings.RATE_LIMIT_STORE_RETRY_SECONDS)
    after = reader.get("/api/accounts")

    assert within["X-RateLimit-Remaining"] == "1"  # still this process's, Redis not asked
    assert after.status_code == 200
    assert after["X-RateLimit-Remaining"] == "2"  # the shared bucket, untouched by the outage
    user_id = after.wsgi_request.user.pk
    assert get_redis_connection("default").exists(cache.make_key(f"rl:user:{user_id}:read"))
    assert_one_outage_logged(caplog)
