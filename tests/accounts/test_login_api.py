"""POST /api/login and /api/logout: tokens shown once, revoked at once, guessing throttled."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import AuthSession
from tests.factories import DEFAULT_PASSWORD, make_user

pytestmark = pytest.mark.django_db


def _login(client: APIClient, username: str, password: str = DEFAULT_PASSWORD, **extra):
    return client.post(
        "/api/login", {"username": username, "password": password}, format="json", **extra
    )


def test_login_returns_a_token_the_user_and_expiry():
    user = make_user(username="asha")
    response = _login(APIClient(), "asha", HTTP_USER_AGENT="algo-bot/1.0")
    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {"id": user.pk, "username": "asha", "email": "asha@example.com"}
    assert len(body["session_token"]) >= 32
    assert body["expires_at"]
    session = AuthSession.objects.get(user=user)
    assert session.user_agent == "algo-bot/1.0"
    assert session.client_ip == "127.0.0.1"


def test_login_token_authenticates_api_requests():
    make_user(username="ravi")
    client = APIClient()
    token = _login(client, "ravi").json()["session_token"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/accounts").status_code == 200


def test_login_with_wrong_password_is_401_invalid_credentials():
    make_user(username="meera")
    response = _login(APIClient(), "meera", "wrong-password")
    assert response.status_code == 401
    assert response.json() == {
        "error": "Invalid credentials",
        "code": "AUTHENTICATION_FAILED",
        "details": {},
    }
    assert not AuthSession.objects.exists()


def test_login_of_unknown_user_looks_like_a_wrong_password():
    response = _login(APIClient(), "nobody-here")
    assert response.status_code == 401
    assert response.json()["error"] == "Invalid credentials"


def test_login_of_deactivated_user_is_refused():
    make_user(username="gone", is_active=False)
    assert _login(APIClient(), "gone").status_code == 401


def test_login_without_password_is_a_400_naming_the_field():
    response = APIClient().post("/api/login", {"username": "x"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert "password" in body["details"]


def test_logout_revokes_the_token_at_once():
    make_user(username="kiran")
    client = APIClient()
    token = _login(client, "kiran").json()["session_token"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/accounts").status_code == 200  # token now cached
    assert client.post("/api/logout").status_code == 204
    response = client.get("/api/accounts")
    assert response.status_code == 401
    assert response.json()["code"] == "AUTHENTICATION_FAILED"


def test_logout_leaves_the_users_other_sessions_alive():
    make_user(username="dev")
    first, second = APIClient(), APIClient()
    first.credentials(HTTP_AUTHORIZATION=f"Bearer {_login(first, 'dev').json()['session_token']}")
    second.credentials(HTTP_AUTHORIZATION=f"Bearer {_login(second, 'dev').json()['session_token']}")
    first.post("/api/logout")
    assert second.get("/api/accounts").status_code == 200


def test_logout_without_a_token_is_401():
    response = APIClient().post("/api/logout")
    assert response.status_code == 401
    assert response.json()["code"] == "AUTHENTICATION_FAILED"


def test_repeated_wrong_passwords_for_one_username_are_throttled(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_user": "3/0.01", "login_ip": "100/1"}
    make_user(username="target")
    client = APIClient()
    statuses = [_login(client, "target", "guess").status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    response = _login(client, "target", DEFAULT_PASSWORD)  # even the right one, for now
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "RATE_LIMITED"
    assert body["retry_after"] >= 1
    assert int(response["Retry-After"]) == body["retry_after"]


def test_username_throttle_ignores_case_and_spaces(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_user": "2/0.01", "login_ip": "100/1"}
    client = APIClient()
    _login(client, "Target", "guess")
    _login(client, " target", "guess")
    assert _login(client, "TARGET", "guess").status_code == 429


def test_one_ip_guessing_many_usernames_is_throttled(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_user": "100/1", "login_ip": "3/0.01"}
    client = APIClient()
    for n in range(3):
        assert _login(client, f"user{n}", "guess").status_code == 401
    assert _login(client, "user99", "guess").status_code == 429
    # Another address is not affected.
    assert _login(client, "user99", "guess", REMOTE_ADDR="10.1.1.1").status_code == 401
