"""Password guessing on /admin/login/ (issue 10, item 2): the same per-username and per-IP
limiter as POST /api/login and the web login, in the same Redis buckets."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD, enable_two_factor, make_user, totp_code

pytestmark = pytest.mark.django_db


def _admin_login(client: Client, username: str, password: str, otp: str = "", **extra):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "otp": otp, "next": "/admin/"},
        **extra,
    )


def _logged_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def test_twelve_wrong_superuser_passwords_then_the_right_one_is_still_refused():
    make_user(username="root", is_staff=True, is_superuser=True)
    client = Client()
    for _ in range(12):
        response = _admin_login(client, "root", "guess")
        assert response.status_code == 200  # the form again
    response = _admin_login(client, "root", DEFAULT_PASSWORD)
    assert response.status_code == 200
    assert "Too many login attempts" in response.content.decode()
    assert not _logged_in(client)


def test_a_right_password_within_the_limit_logs_in():
    # Staff need two-factor login for the admin (issue 13): the code goes in the same form.
    root = make_user(username="root", is_staff=True, is_superuser=True)
    secret = enable_two_factor(root)
    client = Client()
    _admin_login(client, "root", "guess")
    response = _admin_login(client, "root", DEFAULT_PASSWORD, otp=totp_code(secret))
    assert response.status_code == 302
    assert _logged_in(client)


def test_one_ip_guessing_many_admin_usernames_is_throttled(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_user": "100/1", "login_ip": "3/0.01"}
    make_user(username="root", is_staff=True, is_superuser=True)
    client = Client()
    for n in range(3):
        _admin_login(client, f"admin{n}", "guess")
    response = _admin_login(client, "root", DEFAULT_PASSWORD)
    assert "Too many login attempts" in response.content.decode()
    assert not _logged_in(client)
    # Another address is not affected.
    other = Client(REMOTE_ADDR="10.9.9.9")
    assert _admin_login(other, "root", DEFAULT_PASSWORD).status_code == 302


def test_guesses_on_the_api_count_against_the_admin_login(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_user": "3/0.01", "login_ip": "100/1"}
    make_user(username="root", is_staff=True, is_superuser=True)
    api = APIClient()
    for _ in range(3):
        api.post("/api/login", {"username": "root", "password": "guess"}, format="json")
    client = Client()
    response = _admin_login(client, "root", DEFAULT_PASSWORD)
    assert "Too many login attempts" in response.content.decode()
    assert not _logged_in(client)
