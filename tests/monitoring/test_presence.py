"""Presence as the count behind the per-user WebSocket cap (monitoring.presence): a claim is
counted and recorded at once, in Redis (full stack) and in this process's memory (embedded)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from monitoring import presence

USER = 424242


@pytest.fixture(params=["redis", "memory"])
def store(request, settings):
    settings.EMBEDDED = request.param == "memory"
    yield request.param
    for connection_id in [f"tab-{n}" for n in range(20)] + ["again", "late"]:
        presence.mark_disconnected(USER, connection_id)


def test_concurrent_claims_never_pass_the_limit_together(store):
    with ThreadPoolExecutor(max_workers=10) as pool:
        admitted = list(
            pool.map(lambda n: presence.claim_connection(USER, f"tab-{n}", limit=3), range(20))
        )
    assert admitted.count(True) == 3
    assert presence.connection_count(USER) == 3


def test_a_refused_claim_records_nothing_and_a_disconnect_frees_a_slot(store):
    assert all(presence.claim_connection(USER, f"tab-{n}", limit=2) for n in range(2))
    assert not presence.claim_connection(USER, "again", limit=2)
    assert presence.connection_count(USER) == 2
    presence.mark_disconnected(USER, "tab-0")
    assert presence.claim_connection(USER, "again", limit=2)


def test_expired_entries_no_longer_take_a_slot(store, settings):
    settings.PRESENCE_TTL_SECONDS = 1
    assert presence.claim_connection(USER, "tab-0", limit=1)
    assert not presence.claim_connection(USER, "late", limit=1)
    time.sleep(1.1)  # tab-0's process stopped refreshing it
    assert presence.claim_connection(USER, "late", limit=1)
    assert presence.connection_count(USER) == 1


def test_refreshing_a_claimed_connection_is_not_held_to_the_limit(store):
    assert presence.claim_connection(USER, "tab-0", limit=1)
    presence.mark_connected(USER, "tab-0")  # a ping or the periodic refresh
    assert presence.claim_connection(USER, "tab-0", limit=1)  # its own slot, claimed again
    assert presence.connection_count(USER) == 1
