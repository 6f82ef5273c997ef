"""The WebSocket against attacks, over a real socket to daphne in its own process (issue 10,
items 3 and 9): a deeply nested frame, a revoked or expired token, a password change, and an
Origin that differs from the server's only by its port."""

from __future__ import annotations

import json

import pytest

from accounts.services import create_auth_session
from tests.factories import make_account, make_user
from tests.monitoring.conftest import WsClient


def _user_and_token():
    user = make_user()
    make_account(user=user)
    token, session = create_auth_session(user=user, client_ip="127.0.0.1", user_agent="wire")
    return user, token, session


@pytest.mark.slow
def test_a_2000_level_frame_gets_an_error_message_and_the_socket_stays_up(daphne_server):
    user, token, _ = _user_and_token()
    tab = WsClient(daphne_server.url(f"/ws/{user.pk}/?token={token}"))
    tab.wait_for(lambda m: m["type"] == "connection_established")
    deep = "[" * 2000 + "]" * 2000  # 4,000 bytes: under the frame limit
    tab.ws.send(deep)
    error = tab.wait_for(lambda m: m["type"] == "error")
    assert "deeper than" in error["error"]
    deep_object = '{"a":' * 600 + "1" + "}" * 600  # 3,601 bytes
    tab.ws.send(deep_object)
    tab.wait_for(lambda m: m["type"] == "error" and m is not error)
    # Still open and serving: a ping is answered.
    tab.ws.send(json.dumps({"type": "ping"}))
    tab.wait_for(lambda m: m["type"] == "pong")
    assert tab.close_code is None
    tab.close()
