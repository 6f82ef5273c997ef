"""Fixtures of the monitoring tests: the loop's settings, a real daphne."""

from __future__ import annotations

import pytest

from tests.servers import DaphneServer


@pytest.fixture(autouse=True)
def _monitoring_settings(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.PAPER_REJECT_RATE = "0"
    settings.PAPER_FILL_CAP = 0


@pytest.fixture
def daphne_server(transactional_db):
    server = DaphneServer()
    yield server
    server.stop()
