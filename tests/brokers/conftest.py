"""Fixtures for the broker tests: an XTS simulator served over a real socket."""

from __future__ import annotations

import httpx
import pytest

from orders.brokers.xts_simulator import XtsSimulator, parse_users, serve_in_thread

SIM_USERS = (
    "inv-app:inv-secret:INV001:investor,dealer-app:dealer-secret:DLR001:dealer:CLIENT7;CLIENT8"
)


class SimulatorHandle:
    def __init__(self, running):
        self.running = running
        self.app = running.app
        self.base_url = running.base_url

    def set_faults(self, **knobs):
        response = httpx.post(f"{self.base_url}/_sim/faults", json=knobs, timeout=5)
        response.raise_for_status()
        return response.json()

    def stats(self):
        return httpx.get(f"{self.base_url}/_sim/stats", timeout=5).json()

    def expire_sessions(self):
        httpx.post(f"{self.base_url}/_sim/expire-sessions", timeout=5).raise_for_status()


@pytest.fixture
def simulator(transactional_db):
    """A fresh simulator per test on an OS-chosen port; its DB work is committed, so the test
    runs with transactional_db (the server thread uses its own connection)."""
    running = serve_in_thread(XtsSimulator(users=parse_users(SIM_USERS), seed=1))
    yield SimulatorHandle(running)
    running.stop()
