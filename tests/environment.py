"""Loaded before Django (pytest.ini: -p tests.environment): the suite runs the full stack
(REDIS_URL) with DEBUG off, where production requires SECRET_KEY and FERNET_KEYS. These are
the suite's own, never a deployment's; a test that needs others sets them itself.

The trading window is open at every hour (as in the embedded default): a test must not pass
at 14:00 in Mumbai and fail at 16:00. The tests of the window close it themselves
(`settings.TRADING_WINDOW_ALWAYS_OPEN = False`)."""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-suite-secret-key-not-for-any-deployment-0123456789")
os.environ.setdefault("FERNET_KEYS", "dGVzdC1zdWl0ZS1mZXJuZXQta2V5LTAxMjM0NTY3ODk=")
os.environ.setdefault("TRADING_WINDOW_ALWAYS_OPEN", "1")
