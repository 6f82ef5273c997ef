"""A Redis that accepts connections and never answers costs authenticated API requests one
socket timeout per RATE_LIMIT_STORE_RETRY_SECONDS in all, not one for each of their calls to
Redis (the token cache's read and fill, the rate limiter, the metrics' write at the end of
the request): after a failed call one breaker (trading_site.core.redis_breaker) keeps all of
them off Redis for that long. Meanwhile tokens are checked in the database alone, never in a
copy the cache may still hold, and once Redis answers the cache and the metrics are used
again."""

from __future__ import annotations

import logging
import time

import pytest
from django.conf import settings as live_settings
from django.core.cache import cache

from accounts.cached_rows import credential_hash
from accounts.models import AuthSession
from accounts.services import create_auth_session, revoke_auth_session
from tests.factories import make_user
from tests.trading_site.core.conftest import BREAKER_LOGGER, assert_one_outage_logged
from tests.trading_site.core.conftest import SILENT_REDIS_TIMEOUT as TIMEOUT
from trading_site.core import metrics

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(live_settings.EMBEDDED, reason="the full stack's Redis"),
]


@pytest.fixture
def trader():
    """A trader's API session (cached in the live Redis as a login caches it): (raw token,
    row)."""
    return create_auth_session(user=make_user(), client_ip=None, user_agent="")


def get_accounts(token: str, client) -> int:
    return client.get("/api/accounts", HTTP_AUTHORIZATION=f"Bearer {token}").status_code


def cached(token: str) -> bool:
    """Whether the live Redis holds the token's entry (accounts.services' token cache)."""
    return cache.get(f"auth:token:{credential_hash(token)}") is not None


def requests_recorded() -> float:
    """The requests in the latency histogram, as written to the live Redis."""
    series = metrics.snapshot().get((metrics.HISTOGRAM, "http_request_duration_seconds"), {})
    return sum(value for field, value in series.items() if field.endswith("count"))


def test_authenticated_requests_in_a_row_wait_one_timeout_in_all(
    settings, trader, client, hang_redis
):
    token, _session = trader
    settings.RATE_LIMIT_STORE_RETRY_SECONDS = 30
    assert get_accounts(token, client) == 200  # the process's first request, not timed
    hang_redis()

    started = time.monotonic()
    answers = [get_accounts(token, client) for _ in range(5)]
    elapsed = time.monotonic() - started

    assert answers == [200] * 5  # authenticated from the database
    # Without one breaker: a timeout for the cache's read, its fill and the metrics' write in
    # each request, and the limiter's once: 16 s, one after another.
    assert TIMEOUT <= elapsed < 2.5 * TIMEOUT


def test_a_token_revoked_while_redis_hangs_is_refused_whatever_the_cache_holds(
    settings, trader, client, hang_redis
):
    token, session = trader
    settings.RATE_LIMIT_STORE_RETRY_SECONDS = 30
    assert get_accounts(token, client) == 200 and cached(token)
    live = hang_redis()
    assert get_accounts(token, client) == 200  # the breaker opens

    revoke_auth_session(session=session)  # the database says revoked; the cache missed it
    settings.CACHES = live  # Redis answers again, within the breaker's period

    assert AuthSession.objects.get(pk=session.pk).revoked_at is not None
    assert cached(token)  # the copy of the live session is still there, no tombstone
    assert get_accounts(token, client) == 401  # the database alone, not that copy


def test_the_cache_and_the_metrics_are_used_again_once_redis_answers(
    settings, client, hang_redis, caplog
):
    settings.RATE_LIMIT_STORE_RETRY_SECONDS = 2
    caplog.set_level(logging.INFO, logger=BREAKER_LOGGER)
    live = hang_redis()
    token, _session = create_auth_session(user=make_user(), client_ip=None, user_agent="")
    assert get_accounts(token, client) == 200  # the breaker opened by the login's fill

    settings.CACHES = live
    within = get_accounts(token, client)
    within_cached, within_recorded = cached(token), requests_recorded()
    time.sleep(settings.RATE_LIMIT_STORE_RETRY_SECONDS)
    after = get_accounts(token, client)

    assert within == 200
    assert not within_cached and within_recorded == 0  # Redis not asked yet
    assert after == 200
    assert cached(token)  # filled again
    assert requests_recorded() == 1  # the request after the period: written
    assert_one_outage_logged(caplog)
