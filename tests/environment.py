"""Loaded before Django (pytest.ini: -p tests.environment): the suite runs the full stack
(REDIS_URL) with DEBUG off, where production requires SECRET_KEY and FERNET_KEYS. These are
the suite's own, never a deployment's; a test that needs others sets them itself."""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-suite-secret-key-not-for-any-deployment-0123456789")
os.environ.setdefault("FERNET_KEYS", "dGVzdC1zdWl0ZS1mZXJuZXQta2V5LTAxMjM0NTY3ODk=")
