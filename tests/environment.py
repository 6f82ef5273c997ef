"""Loaded before Django (pytest.ini: -p tests.environment): the suite runs the full stack
(REDIS_URL) with DEBUG off, where production requires SECRET_KEY and FERNET_KEYS. These are
the suite's own, never a deployment's; a test that needs others sets them itself.

The trading window is open at every hour (as in the embedded default): a test must not pass
at 14:00 in Mumbai and fail at 16:00. The tests of the window close it themselves
(`settings.TRADING_WINDOW_ALWAYS_OPEN = False`).

Under pytest-xdist (`make test` runs two workers) each worker gets its own services:
pytest-django suffixes the test database (`test_trading_gw0`); here each worker takes its own
Redis database (the tests clear theirs) and its own channel-layer prefix (pub/sub ignores the
database), counting down from REDIS_URL's: gw0 keeps it, gw1 the one below, and so on."""

from __future__ import annotations

import os
import re

os.environ.setdefault("SECRET_KEY", "test-suite-secret-key-not-for-any-deployment-0123456789")
os.environ.setdefault("FERNET_KEYS", "dGVzdC1zdWl0ZS1mZXJuZXQta2V5LTAxMjM0NTY3ODk=")
os.environ.setdefault("TRADING_WINDOW_ALWAYS_OPEN", "1")


def _worker_services(worker: str) -> None:
    index = int(worker.removeprefix("gw"))
    url = os.environ.get("REDIS_URL", "")
    if url and index:
        base = re.search(r"/(\d+)$", url)
        db = (int(base.group(1)) if base else 0) - index
        if db < 0:
            raise RuntimeError(f"too many test workers for REDIS_URL {url} (one Redis db each)")
        os.environ["REDIS_URL"] = f"{url[: base.start()] if base else url.rstrip('/')}/{db}"
    prefix = os.environ.get("CHANNEL_LAYER_PREFIX", "td-channels")
    os.environ["CHANNEL_LAYER_PREFIX"] = f"{prefix}-{worker}"


if os.environ.get("PYTEST_XDIST_WORKER"):
    _worker_services(os.environ["PYTEST_XDIST_WORKER"])
