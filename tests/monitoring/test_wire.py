"""The WebSocket over a real socket: daphne in its own process serving trading_site.asgi, a
`websockets` client, and messages crossing processes through the Redis channel layer."""

from __future__ import annotations

import json

import pytest

from tests.factories import make_trader_with_token
from tests.servers import WsClient
from trading_site.core.realtime import notify_user


@pytest.mark.slow
def test_close_codes_messages_and_frame_limit_on_the_wire(daphne_server):
    user, token = make_trader_with_token()
    other, _ = make_trader_with_token()

    anonymous = WsClient(daphne_server.url(f"/ws/{user.pk}/"))
    assert anonymous.wait_closed() == 4401
    assert anonymous.messages == []

    intruder = WsClient(daphne_server.url(f"/ws/{other.pk}/?token={token}"))
    assert intruder.wait_closed() == 4403
    assert intruder.messages == []  # not a byte of data before the close

    tabs = [WsClient(daphne_server.url(f"/ws/{user.pk}/?token={token}")) for _ in range(2)]
    for tab in tabs:
        hello = tab.wait_for(lambda m: m["type"] == "connection_established")
        assert hello["user_id"] == user.pk
    # From this (test) process, through Redis, to the daphne process, to both tabs.
    notify_user(user.pk, {"type": "pnl_update", "account_id": 1, "realized": "1.00"})
    for tab in tabs:
        tab.wait_for(lambda m: m["type"] == "pnl_update" and m["realized"] == "1.00")

    tabs[0].ws.send(json.dumps({"type": "ping"}))
    tabs[0].wait_for(lambda m: m["type"] == "pong")
    tabs[0].ws.send("x" * (4096 * 2))  # over WS_MAX_MESSAGE_BYTES
    assert tabs[0].wait_closed() == 1009
    tabs[1].close()
