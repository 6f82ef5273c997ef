"""Fixtures of the monitoring tests: a channel-layer listener on a user's group (what every
WebSocket tab of the user would receive), the loop's settings, a real daphne."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

from tests.servers import DaphneServer
from trading_site.core.realtime import user_group


class GroupListener:
    """Subscribed to a user's group on the real (Redis) channel layer."""

    def __init__(self, user_id: int):
        self.layer = get_channel_layer()
        # One loop for every call: channels_redis binds a channel's receive buffer to the
        # loop that first received on it.
        self.loop = asyncio.new_event_loop()
        self.channel = self.loop.run_until_complete(self.layer.new_channel())
        self.loop.run_until_complete(self.layer.group_add(user_group(user_id), self.channel))
        self.received: list[dict] = []

    def drain(self, *, quiet_seconds: float = 0.3) -> list[dict]:
        """Everything that arrived, waiting until nothing more comes for `quiet_seconds`."""

        async def collect():
            while True:
                try:
                    event = await asyncio.wait_for(self.layer.receive(self.channel), quiet_seconds)
                except TimeoutError:
                    return
                self.received.append(event["message"])

        self.loop.run_until_complete(collect())
        return self.received

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in self.drain() if m.get("type") == kind]


@pytest.fixture
def listen():
    listeners: list[GroupListener] = []

    def make(user_id: int) -> GroupListener:
        listeners.append(GroupListener(user_id))
        return listeners[-1]

    yield make
    for listener in listeners:
        listener.loop.close()


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
