"""A password change ends every other way in (issue 10, item 9): the user's API tokens and
other browsers' sessions; the browser that made the change stays logged in. The sockets
those credentials opened close too (tests/monitoring/test_ws_security.py)."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import AuthSession
from accounts.services import create_auth_session
from tests import factories
from tests.factories import DEFAULT_PASSWORD, make_user

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-new-long-passphrase-77"


def _token_client(user) -> tuple[APIClient, str]:
    token, _ = create_auth_session(user=user, client_ip="127.0.0.1", user_agent="t")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/accounts").status_code == 200  # cached as valid
    return client, token


def _browser(user, password=DEFAULT_PASSWORD) -> Client:
    client = Client()
    assert client.login(username=user.username, password=password)
    return client


def test_changing_the_password_on_the_web_ends_tokens_and_other_browsers():
    user = make_user()
    api, _ = _token_client(user)
    changer, other = _browser(user), _browser(user)
    page = changer.get("/settings/password/")
    assert page.status_code == 200
    response = changer.post(
        "/settings/password/",
        {
            "old_password": DEFAULT_PASSWORD,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    assert api.get("/api/accounts").status_code == 401
    assert not AuthSession.objects.filter(user=user, revoked_at__isnull=True).exists()
    assert other.get("/settings/").status_code == 302  # to the login page
    assert changer.get("/settings/").status_code == 200
    assert _browser(user, NEW_PASSWORD).get("/settings/").status_code == 200


def test_a_wrong_old_password_changes_nothing():
    user = make_user()
    api, _ = _token_client(user)
    changer = _browser(user)
    response = changer.post(
        "/settings/password/",
        {"old_password": "guess", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 400
    assert api.get("/api/accounts").status_code == 200


def test_guessing_the_old_password_is_throttled_like_a_login(settings):
    """A session left open tried old passwords without limit (the login limiter guards
    every other place the password is checked)."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_user": "3/0.001", "login_ip": "100/1"}
    user = make_user()
    changer = _browser(user)
    change = {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    for guess in ("guess-1", "guess-2", "guess-3"):
        changer.post("/settings/password/", {"old_password": guess, **change})
    response = changer.post("/settings/password/", {"old_password": DEFAULT_PASSWORD, **change})
    assert response.status_code == 429
    assert "Too many login attempts" in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_an_admin_password_change_ends_the_users_tokens():
    user = make_user()
    api, _ = _token_client(user)
    victim_browser = _browser(user)
    admin = factories.staff_client()
    response = admin.post(
        f"/admin/accounts/user/{user.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content[:500]
    assert api.get("/api/accounts").status_code == 401
    assert victim_browser.get("/settings/").status_code == 302


def test_a_password_set_in_code_ends_the_tokens():
    user = make_user()
    api, _ = _token_client(user)
    user.set_password(NEW_PASSWORD)
    user.save()
    assert api.get("/api/accounts").status_code == 401


def test_a_silent_hash_upgrade_at_login_ends_nothing(settings):
    """Django re-hashes a password at login when the hasher changes: not a password change."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    ]
    user = make_user()
    api, _ = _token_client(user)
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    before = type(user).objects.get(pk=user.pk).password
    assert _browser(user).get("/settings/").status_code == 200
    assert type(user).objects.get(pk=user.pk).password != before  # upgraded
    assert api.get("/api/accounts").status_code == 200


def test_other_data_changes_keep_the_tokens():
    user = make_user()
    api, _ = _token_client(user)
    user.email = "new@example.com"
    user.save()
    assert api.get("/api/accounts").status_code == 200
