"""Suite-wide fixtures. Tests run against MariaDB and Redis (see `make test`)."""

from __future__ import annotations

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _clean_cache():
    """Each test starts with an empty cache (tokens, rate limits, locks, presence)."""
    cache.clear()
    yield
    cache.clear()
