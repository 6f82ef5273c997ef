"""API session tokens: hashed at rest, cached, expiring, revoked at once on every process."""

from __future__ import annotations

import hashlib
import os
import subprocess
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from accounts.models import AuthSession
from accounts.services import (
    authenticate_token,
    create_auth_session,
    revoke_auth_session,
    revoke_user_sessions,
)
from tests.factories import api_client_for, make_user
from tests.servers import python_process

pytestmark = pytest.mark.django_db


def _new_session(user=None):
    return create_auth_session(user=user or make_user(), client_ip="10.0.0.7", user_agent="pytest")


def test_token_authenticates_its_user():
    user = make_user()
    token, session = _new_session(user)
    found = authenticate_token(token)
    assert found is not None
    assert found[0].pk == user.pk
    assert found[1].pk == session.pk


def test_session_records_client_ip_user_agent_and_expiry():
    before = timezone.now()
    _token, session = _new_session()
    session.refresh_from_db()
    assert session.client_ip == "10.0.0.7"
    assert session.user_agent == "pytest"
    expected = before + timedelta(seconds=settings.AUTH_TOKEN_TTL_SECONDS)
    assert abs((session.expires_at - expected).total_seconds()) < 5


def test_token_is_stored_only_as_its_sha256_hash():
    token, session = _new_session()
    with connection.cursor() as cursor:
        cursor.execute("SELECT token_hash FROM auth_sessions WHERE id = %s", [session.pk])
        (stored,) = cursor.fetchone()
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored


def test_unknown_token_is_rejected():
    _new_session()
    assert authenticate_token("not-a-real-token-at-all-0123456789") is None


def test_token_authenticates_from_database_when_cache_is_empty():
    token, session = _new_session()
    cache.clear()
    found = authenticate_token(token)
    assert found is not None and found[1].pk == session.pk


def test_expired_token_is_rejected():
    token, session = _new_session()
    assert authenticate_token(token) is not None  # now cached
    # Expire it in the cached copy too: the check must read the expiry, not only the cache hit.
    AuthSession.objects.filter(pk=session.pk).update(expires_at=timezone.now() - timedelta(1))
    cache.clear()
    assert authenticate_token(token) is None


def test_cached_entry_expires_with_the_token(settings):
    settings.AUTH_TOKEN_TTL_SECONDS = 1
    token, _session = _new_session()
    assert authenticate_token(token) is not None
    import time

    time.sleep(1.2)
    assert authenticate_token(token) is None


def test_revocation_takes_effect_at_once_when_cached():
    token, session = _new_session()
    assert authenticate_token(token) is not None  # cached in Redis
    revoke_auth_session(session=session)
    assert authenticate_token(token) is None
    session.refresh_from_db()
    assert session.revoked_at is not None


def test_deactivated_user_token_stops_working_at_once():
    user = make_user()
    token, _session = _new_session(user)
    assert authenticate_token(token) is not None
    user.is_active = False
    user.save()
    assert authenticate_token(token) is None


def test_revoke_user_sessions_ends_every_session_of_the_user():
    user = make_user()
    first, _ = _new_session(user)
    second, _ = _new_session(user)
    other_token, _ = _new_session()
    assert revoke_user_sessions(user=user) == 2
    assert authenticate_token(first) is None
    assert authenticate_token(second) is None
    assert authenticate_token(other_token) is not None


def test_last_used_is_written_at_most_once_a_minute():
    token, session = _new_session()
    authenticate_token(token)
    session.refresh_from_db()
    first_use = session.last_used_at
    assert first_use is not None
    authenticate_token(token)
    session.refresh_from_db()
    assert session.last_used_at == first_use


def test_api_client_for_factory_authenticates_api_calls():
    client = api_client_for(make_user())
    response = client.get("/api/accounts")
    assert response.status_code == 200


_SECOND_PROCESS = """
import os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trading_site.settings")
django.setup()
from accounts.services import authenticate_token
print("READY", flush=True)
for line in sys.stdin:
    print("OK" if authenticate_token(line.strip()) else "NONE", flush=True)
"""


@pytest.mark.django_db(transaction=True)
def test_logout_revokes_token_in_a_second_process_at_once():
    """A long-lived second process that already used (and cached) the token sees the revoke."""
    token, session = _new_session()
    env = {
        **os.environ,
        "DATABASE_URL": _url_of_test_database(),
        "REDIS_URL": settings.REDIS_URL,
    }
    child = python_process(
        ["-c", _SECOND_PROCESS], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "READY"
        child.stdin.write(token + "\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "OK"
        revoke_auth_session(session=session)
        child.stdin.write(token + "\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "NONE"
    finally:
        child.stdin.close()
        child.wait(timeout=30)


def _url_of_test_database() -> str:
    db = settings.DATABASES["default"]
    user = db.get("USER") or "root"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 3306
    return f"mysql://{user}{password}@{host}:{port}/{db['NAME']}"


def test_cache_never_holds_the_password_hash():
    user = make_user()
    token, _session = _new_session(user)
    entry = cache.get("auth:token:" + hashlib.sha256(token.encode()).hexdigest())
    assert entry is not None
    assert "password" not in entry["user"]
    assert user.password not in repr(entry)


def test_user_from_a_cached_token_saves_without_losing_the_password():
    from tests.factories import DEFAULT_PASSWORD

    user = make_user()
    token, _session = _new_session(user)
    cached_user, _ = authenticate_token(token)
    cached_user.first_name = "Asha"
    cached_user.save()
    user.refresh_from_db()
    assert user.first_name == "Asha"
    assert user.check_password(DEFAULT_PASSWORD)


def test_purge_removes_only_long_dead_sessions():
    from accounts.services import purge_expired_auth_sessions

    live_token, live = _new_session()
    _t1, expired = _new_session()
    _t2, revoked = _new_session()
    long_ago = timezone.now() - timedelta(days=30)
    AuthSession.objects.filter(pk=expired.pk).update(expires_at=long_ago)
    AuthSession.objects.filter(pk=revoked.pk).update(revoked_at=long_ago)
    assert purge_expired_auth_sessions() == 2
    assert list(AuthSession.objects.values_list("pk", flat=True)) == [live.pk]
    assert authenticate_token(live_token) is not None
