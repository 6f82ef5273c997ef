"""The WebSocket against a hostile or careless client: at most WS_MAX_CONNECTIONS_PER_USER
open sockets per user, across every web process (closed 4429). Over real daphne processes
where the wire is the point; through the ASGI application in this process for the embedded
mode and the logs."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from monitoring import presence
from tests.factories import make_trader_with_token
from tests.servers import DaphneServer, WsClient, wait_for
from trading_site.asgi import application

CAP = 3
TTL = 4


@pytest.fixture
def capped_servers(transactional_db):
    """Two web processes sharing the test's database and Redis, each capping a user at CAP
    connections, with a short presence TTL (a dead process's slots free within TTL s)."""
    servers = [
        DaphneServer(WS_MAX_CONNECTIONS_PER_USER=str(CAP), PRESENCE_TTL_SECONDS=str(TTL))
        for _ in range(2)
    ]
    yield servers
    for server in servers:
        server.stop()


def _open(server: DaphneServer, user, token) -> WsClient:
    tab = WsClient(server.url(f"/ws/{user.pk}/?token={token}"))
    tab.wait_for(lambda m: m["type"] == "connection_established")
    return tab


def _refused(server: DaphneServer, user, token) -> WsClient:
    tab = WsClient(server.url(f"/ws/{user.pk}/?token={token}"))
    assert tab.wait_closed() == 4429, tab.messages
    return tab


# ---- connections per user ---------------------------------------------------------------------


@pytest.mark.slow
def test_the_cap_counts_a_users_connections_on_every_web_process(capped_servers):
    first, second = capped_servers
    user, token = make_trader_with_token()
    other, other_token = make_trader_with_token()
    tabs = [_open(first, user, token), _open(first, user, token), _open(second, user, token)]

    for server in (second, first):
        refused = _refused(server, user, token)
        assert refused.messages == []  # not a byte of data before the close
    assert presence.connection_count(user.pk) == CAP
    # Another user is not held back by this one's cap.
    _open(second, other, other_token).close()
    # The tabs within the cap stay up and answer.
    for tab in tabs:
        tab.ping()
        assert tab.close_code is None
        tab.close()


@pytest.mark.slow
def test_a_closed_connection_frees_its_slot_at_once(capped_servers):
    server = capped_servers[0]
    user, token = make_trader_with_token()
    tabs = [_open(server, user, token) for _ in range(CAP)]
    _refused(server, user, token)

    tabs[0].close()
    wait_for(lambda: presence.connection_count(user.pk) == CAP - 1, timeout=5)
    replacement = _open(server, user, token)
    _refused(server, user, token)
    for tab in [*tabs[1:], replacement]:
        tab.close()


@pytest.mark.slow
def test_a_killed_web_process_frees_its_slots_within_the_presence_ttl(capped_servers):
    doomed, survivor = capped_servers
    user, token = make_trader_with_token()
    for _ in range(CAP):
        _open(doomed, user, token)
    os.kill(doomed.process.pid, signal.SIGKILL)  # no disconnect handler runs
    doomed.process.wait(10)
    killed_at = time.monotonic()

    # Its slots are still counted until they expire: the other process refuses meanwhile.
    assert presence.connection_count(user.pk) == CAP
    _refused(survivor, user, token)
    wait_for(lambda: presence.connection_count(user.pk) == 0, timeout=3 * TTL)
    assert time.monotonic() - killed_at <= TTL + 1.5
    _open(survivor, user, token).close()


@pytest.mark.django_db(transaction=True)
async def test_embedded_the_cap_is_counted_in_process_and_a_refusal_logged(settings, caplog):
    settings.EMBEDDED = True  # presence (and with it the cap) in this process's memory
    settings.WS_MAX_CONNECTIONS_PER_USER = 2
    user, token = await sync_to_async(make_trader_with_token)()
    tabs = [WebsocketCommunicator(application, f"/ws/{user.pk}/?token={token}") for _ in "abc"]
    for tab in tabs[:2]:
        await tab.connect()
        assert (await tab.receive_json_from(timeout=3))["type"] == "connection_established"

    with caplog.at_level(logging.WARNING, logger="monitoring.consumers"):
        await tabs[2].connect()
        closed = await tabs[2].receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": 4429}
    refusal = next(r for r in caplog.records if "connections per user" in r.getMessage())
    assert (refusal.user_id, refusal.limit) == (user.pk, 2)
    await tabs[2].disconnect()
    assert presence.connection_count(user.pk) == 2  # the refused one gave back no one's slot

    await tabs[0].disconnect()
    again = WebsocketCommunicator(application, f"/ws/{user.pk}/?token={token}")
    await again.connect()
    assert (await again.receive_json_from(timeout=3))["type"] == "connection_established"
    for tab in (tabs[1], again):
        await tab.disconnect()
    assert presence.connection_count(user.pk) == 0
