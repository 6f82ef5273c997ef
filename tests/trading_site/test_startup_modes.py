"""Start-up: the embedded mode needs no services; production refuses to start without secrets."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.servers import REPO, fresh_machine_env, run_manage

_EMBEDDED_REQUESTS = """
from django.conf import settings
from django.test import Client
from accounts.models import User
assert settings.EMBEDDED and "sqlite" in settings.DATABASES["default"]["ENGINE"]
assert "locmem" in settings.CACHES["default"]["BACKEND"].lower()
client = Client()
print("healthz", client.get("/healthz").status_code)
ready = client.get("/readyz")
print("readyz", ready.status_code, ready.json()["checks"]["beat"]["status"])
User.objects.create_user(username="embedded", email="e@example.com", password="pw-embedded-1")
login = client.post("/api/login", {"username": "embedded", "password": "pw-embedded-1"},
                    content_type="application/json")
token = login.json()["session_token"]
accounts = client.get("/api/accounts", HTTP_AUTHORIZATION="Bearer " + token)
print("accounts", accounts.status_code, accounts["X-RateLimit-Limit"])
client.post("/api/logout", HTTP_AUTHORIZATION="Bearer " + token)
print("after-logout", client.get("/api/accounts", HTTP_AUTHORIZATION="Bearer " + token).status_code)
"""


@pytest.mark.slow
def test_embedded_mode_runs_on_sqlite_without_redis(tmp_path):
    env = fresh_machine_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'embedded.sqlite3'}",
        VAR_DIR=str(tmp_path / "var"),
    )
    check = run_manage("check", env=env)
    assert check.returncode == 0, check.stderr
    migrate = run_manage("migrate", "--noinput", env=env)
    assert migrate.returncode == 0, migrate.stderr
    run = run_manage("shell", "-c", _EMBEDDED_REQUESTS, env=env)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.split("\n")
    assert "healthz 200" in lines
    assert "readyz 200 embedded" in lines
    assert "accounts 200 300" in lines  # the default "read" bucket answered from local memory
    assert "after-logout 401" in lines
    # The generated secrets went into VAR_DIR, readable by the owner only.
    for name in ("secret_key", "fernet_key"):
        secret = tmp_path / "var" / name
        assert secret.exists()
        assert secret.stat().st_mode & 0o077 == 0


def _start_django(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env={**env, "DJANGO_SETTINGS_MODULE": "trading_site.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_secret_key(tmp_path):
    env = fresh_machine_env(
        DJANGO_DEBUG="0", REDIS_URL="redis://127.0.0.1:6379/1", VAR_DIR=str(tmp_path)
    )
    result = _start_django(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY must be set" in result.stderr
    assert not (tmp_path / "secret_key").exists()  # nothing was generated


def test_production_refuses_to_start_without_fernet_keys(tmp_path):
    env = fresh_machine_env(
        DJANGO_DEBUG="0",
        REDIS_URL="redis://127.0.0.1:6379/1",
        SECRET_KEY="x" * 50,
        VAR_DIR=str(tmp_path),
    )
    result = _start_django(env)
    assert result.returncode != 0
    assert "FERNET_KEYS must be set" in result.stderr


@pytest.mark.parametrize(
    "setting",
    [
        {"WS_MAX_CONNECTIONS_PER_USER": "0"},
        {"WS_INBOUND_BURST": "0"},
        {"WS_INBOUND_MESSAGES_PER_SECOND": "0"},
        {"WS_INBOUND_MESSAGES_PER_SECOND": "nan"},
    ],
    ids=["no-connections", "no-burst", "no-rate", "nan-rate"],
)
def test_websocket_limits_out_of_range_stop_the_start(tmp_path, setting):
    result = _start_django(fresh_machine_env(VAR_DIR=str(tmp_path), **setting))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert next(iter(setting)) in result.stderr
