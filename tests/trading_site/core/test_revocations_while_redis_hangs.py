"""A credential revoked while Redis hangs stays refused once Redis answers again. A Redis that
hung keeps its data: the copy of the token or key cached before the outage is still there,
without the tombstone the revocation could not write, and would authenticate again for the
rest of its time in the cache. Whatever this process could not write it writes first, with
the cache epoch (no entry cached before it is trusted, by any process) and the tombstones of
what was revoked meanwhile by processes that may have died since (from the database)."""

from __future__ import annotations

import time

import pytest
from django.conf import settings as live_settings
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.cached_rows import CACHE_EPOCH_KEY, CREDENTIAL_CACHES, credential_hash
from accounts.models import ApiKey, AuthSession
from accounts.services import create_auth_session, revoke_auth_session
from tests.factories import api_key_client_for, make_user

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(live_settings.EMBEDDED, reason="the full stack's Redis"),
]

RETRY_SECONDS = 1.5


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def get_accounts(raw: str) -> int:
    return bearer(raw).get("/api/accounts").status_code


def tombstone(key: str, raw: str) -> bool:
    return cache.get(f"auth:{key}:{credential_hash(raw)}") is True


def redis_back(settings, live: dict) -> None:
    """Redis answers again (with the data it kept), and this process's breaker is due to
    ask it."""
    settings.CACHES = live
    time.sleep(RETRY_SECONDS)


@pytest.fixture
def outage(settings, hang_redis):
    """`outage()` hangs Redis after this process found it out (its breaker open); returns
    the live cache settings."""
    settings.RATE_LIMIT_STORE_RETRY_SECONDS = RETRY_SECONDS

    def start(raw: str) -> dict:
        live = hang_redis()
        assert get_accounts(raw) == 200  # from the database; the breaker opens
        return live

    return start


def test_a_token_logged_out_while_redis_hangs_is_refused_once_it_answers(settings, outage):
    token, session = create_auth_session(user=make_user(), client_ip=None, user_agent="")
    assert get_accounts(token) == 200 and cache.get(f"auth:token:{session.token_hash}")
    live = outage(token)

    assert bearer(token).post("/api/logout").status_code == 204  # its tombstone not written
    redis_back(settings, live)

    assert cache.get(f"auth:token:{session.token_hash}") is not None  # the copy Redis kept
    assert get_accounts(token) == 401
    assert tombstone("revoked", token)  # written as Redis answered, for every process


def test_an_api_key_revoked_while_redis_hangs_is_refused_once_it_answers(settings, outage):
    user = make_user()
    _client, raw, key = api_key_client_for(user, scope=ApiKey.Scope.TRADE)
    assert get_accounts(raw) == 200 and cache.get(f"auth:apikey:{key.key_hash}")
    live = outage(raw)

    owner_token, _session = create_auth_session(user=user, client_ip=None, user_agent="")
    assert bearer(owner_token).delete(f"/api/api-keys/{key.pk}").status_code in (200, 204)
    redis_back(settings, live)

    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert get_accounts(raw) == 401
    assert tombstone("apikey-revoked", raw)


def test_a_revocation_its_process_forgot_is_found_in_the_database(settings, outage):
    """A process revoked the token while Redis hung, then died: its owed tombstone is gone."""
    token, session = create_auth_session(user=make_user(), client_ip=None, user_agent="")
    live = outage(token)
    revoke_auth_session(session=session)
    for credentials in CREDENTIAL_CACHES:
        credentials.forget_pending()
    redis_back(settings, live)

    assert get_accounts(token) == 401
    assert tombstone("revoked", token)  # from revoked_at


def test_a_credential_deleted_by_a_process_that_died_is_refused_through_the_epoch(settings, outage):
    """No revoked_at to find and no tombstone owed: no entry cached before the outage is
    trusted, by any process, once one process found Redis again."""
    token, session = create_auth_session(user=make_user(), client_ip=None, user_agent="")
    live = outage(token)
    AuthSession.objects.filter(pk=session.pk).delete()
    for credentials in CREDENTIAL_CACHES:
        credentials.forget_pending()
    redis_back(settings, live)

    assert cache.get(f"auth:token:{session.token_hash}") is not None
    assert get_accounts(token) == 401
    kept = cache.get(f"auth:token:{session.token_hash}")  # still there, not trusted
    assert kept["cached_at"] < cache.get(CACHE_EPOCH_KEY)


def test_a_live_token_is_cached_again_after_the_outage(settings, outage):
    token, session = create_auth_session(user=make_user(), client_ip=None, user_agent="")
    live = outage(token)
    redis_back(settings, live)

    assert get_accounts(token) == 200  # the copy from before the outage not trusted
    entry = cache.get(f"auth:token:{session.token_hash}")
    assert entry["cached_at"] >= cache.get(CACHE_EPOCH_KEY)  # read again, cached again
    assert get_accounts(token) == 200
