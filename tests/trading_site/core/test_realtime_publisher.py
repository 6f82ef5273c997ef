"""The full-stack notify path: one long-lived publisher thread per process, messages of a
user delivered in the order they were handed over, never blocking the caller."""

from __future__ import annotations

import asyncio

from channels.layers import get_channel_layer

from trading_site.core import realtime


def _listen(user_id: int):
    layer = get_channel_layer()
    loop = asyncio.new_event_loop()
    channel = loop.run_until_complete(layer.new_channel())
    loop.run_until_complete(layer.group_add(realtime.user_group(user_id), channel))
    return layer, loop, channel


def test_one_users_messages_arrive_in_the_order_they_were_sent(db):
    layer, loop, channel = _listen(4242)
    try:
        realtime.notify_users([(4242, {"type": "order_update", "n": n}) for n in range(30)])
        assert realtime.flush_notifications(timeout=10)

        async def receive_all():
            return [
                (await asyncio.wait_for(layer.receive(channel), 5))["message"]["n"]
                for _ in range(30)
            ]

        assert loop.run_until_complete(receive_all()) == list(range(30))
    finally:
        loop.close()


def test_a_forked_process_starts_its_own_publisher_thread(db):
    realtime.notify_user(4243, {"type": "pong"})
    inherited = realtime._get_publisher()
    inherited.pid = -1  # what a child sees after fork: the parent's object, no live thread
    fresh = realtime._get_publisher()
    assert fresh is not inherited
    assert fresh.thread.is_alive()
    layer, loop, channel = _listen(4243)
    try:
        realtime.notify_user(4243, {"type": "order_update", "n": 1})
        message = loop.run_until_complete(asyncio.wait_for(layer.receive(channel), 5))
        assert message["message"] == {"type": "order_update", "n": 1}
    finally:
        loop.close()
