from __future__ import annotations

import pytest

from tests.orders.brokers.streams import recorder


@pytest.fixture
def recording(settings):
    """The tests' own handler and resync (they record into Redis)."""
    settings.BROKER_EVENT_HANDLER = "tests.orders.brokers.streams.recorder.record_event"
    settings.BROKER_RESYNC_HANDLER = "tests.orders.brokers.streams.recorder.record_resync"
    recorder.clear()
    yield recorder
    recorder.clear()
