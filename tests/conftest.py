"""Suite-wide fixtures. Tests run against MariaDB and Redis (see `make test`)."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from accounts.cached_rows import CREDENTIAL_CACHES
from orders.brokers.xts.simulator import XtsSimulator, parse_users, serve_in_thread
from tests.factories import xts_protected_bracket
from tests.servers import SIM_USERS, GroupListener, SimulatorHandle
from trading_site.core.api.ratelimit import store_outage


@pytest.fixture(autouse=True)
def _clean_cache():
    """Each test starts with an empty cache (tokens, rate limits, locks, presence), and with a
    rate limiter that asks it (no outage left open by an earlier test)."""
    store_outage.reset()
    for credentials in CREDENTIAL_CACHES:
        credentials.forget_pending()
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2 at production strength costs ~0.5 s per hash on a 2-core machine; tests that
    are about hashing itself set their own hashers."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _broker_hosts_on_loopback(_clean_cache, settings):
    """The XTS simulator and the test servers listen on 127.0.0.1: the operator setting that
    allows private broker hosts is on, as in development; the host-policy tests turn it off.
    (After _clean_cache: the settings are restored before the cache is cleared.)"""
    settings.BROKER_ALLOW_PRIVATE_HOSTS = True


# ---- the XTS simulator over a real socket (broker, market and order tests) ----


@pytest.fixture
def simulator(transactional_db):
    """A fresh simulator per test on an OS-chosen port; its DB work is committed, so the test
    runs with transactional_db (the server thread uses its own connection)."""
    running = serve_in_thread(XtsSimulator(users=parse_users(SIM_USERS), seed=1))
    yield SimulatorHandle(running)
    running.stop()


@pytest.fixture
def protected_bracket(simulator, settings):
    """On the simulator: a trader's filled bracket BUY 10 RELIANCE with its stop-loss and
    target working (tests.factories.xts_protected_bracket): (user, account, instrument,
    bracket)."""
    return xts_protected_bracket(simulator, settings)


@pytest.fixture
def listen():
    """`listen(user_id)`: a GroupListener on the user's group (what every WebSocket tab of
    the user would receive), closed at the end of the test."""
    listeners: list[GroupListener] = []

    def make(user_id: int) -> GroupListener:
        listeners.append(GroupListener(user_id))
        return listeners[-1]

    yield make
    for listener in listeners:
        listener.loop.close()
