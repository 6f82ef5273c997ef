from __future__ import annotations

import pytest

from tests.orders.brokers.streams import harness, recorder


@pytest.fixture
def recording(settings):
    """The tests' own handler and resync (they record into Redis)."""
    settings.BROKER_EVENT_HANDLER = "tests.orders.brokers.streams.recorder.record_event"
    settings.BROKER_RESYNC_HANDLER = "tests.orders.brokers.streams.recorder.record_resync"
    recorder.clear()
    yield recorder
    recorder.clear()


@pytest.fixture(autouse=True)
def _no_supervisor_outlives_its_test():
    """A supervisor thread left running (its test failed before stopping it, or its stop
    timed out) is stopped here, and the test fails: none scans a database after the session
    dropped it."""
    yield
    problems = harness.stop_all()
    assert not problems, problems


@pytest.fixture
def supervisors():
    """Starts supervisors in threads (`supervisors(build_supervisor(...))`) and stops them all
    at the end of the test."""
    running = []

    def start(supervisor):
        handle = harness.RunningSupervisor(supervisor)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        handle.stop()
