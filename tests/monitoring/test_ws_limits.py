"""The WebSocket against a hostile or careless client: at most WS_MAX_CONNECTIONS_PER_USER
open sockets per user, across every web process (closed 4429), and a token bucket on the
frames each socket sends (closed 1008). Over real daphne processes where the wire is the
point; through the ASGI application in this process for the embedded mode and the logs."""

from __future__ import annotations

import json
import logging
import os
import signal
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from websockets.exceptions import ConnectionClosed

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


# ---- frames per second ------------------------------------------------------------------------


def _flood(send, count: int) -> None:
    try:
        for _ in range(count):
            send()
    except ConnectionClosed:
        pass  # the server closed it part way: the point


@pytest.mark.slow
def test_a_ping_message_flood_is_closed_1008_after_the_burst(daphne_server, settings):
    user, token = make_trader_with_token()
    tab = _open(daphne_server, user, token)
    bystander = _open(daphne_server, user, token)  # the same user's other tab

    started = time.monotonic()
    _flood(tab.send_ping, 500)
    assert tab.wait_closed() == 1008
    lasted = time.monotonic() - started
    pongs = [m for m in tab.messages if m["type"] == "pong"]
    # The burst is answered, then at most the refill of the flood's short life; not 500.
    refill = settings.WS_INBOUND_MESSAGES_PER_SECOND * lasted
    assert settings.WS_INBOUND_BURST <= len(pongs) <= settings.WS_INBOUND_BURST + refill, lasted
    bystander.ping()
    assert bystander.close_code is None
    bystander.close()


@pytest.mark.slow
def test_a_full_burst_and_a_steady_pace_within_the_rate_stay_open(daphne_server, settings):
    user, token = make_trader_with_token()
    tab = _open(daphne_server, user, token)
    for _ in range(settings.WS_INBOUND_BURST):
        tab.send_ping()
    wait_for(lambda: sum(m["type"] == "pong" for m in tab.messages) == settings.WS_INBOUND_BURST)
    for _ in range(10):  # well under WS_INBOUND_MESSAGES_PER_SECOND once the burst is spent
        time.sleep(2 / settings.WS_INBOUND_MESSAGES_PER_SECOND)
        tab.send_ping()
    wait_for(
        lambda: sum(m["type"] == "pong" for m in tab.messages) == settings.WS_INBOUND_BURST + 10
    )
    assert tab.close_code is None
    tab.close()


@pytest.mark.slow
def test_a_protocol_ping_flood_is_closed_1008(daphne_server):
    """Ping frames never reach the application (autobahn answers them itself): the server's
    protocol counts them."""
    user, token = make_trader_with_token()
    tab = _open(daphne_server, user, token)
    _flood(tab.ws.ping, 500)
    assert tab.wait_closed() == 1008


@pytest.mark.django_db(transaction=True)
async def test_frames_past_the_bucket_close_1008_and_are_logged(settings, caplog):
    settings.WS_INBOUND_BURST = 5
    settings.WS_INBOUND_MESSAGES_PER_SECOND = 0.5
    user, token = await sync_to_async(make_trader_with_token)()
    tab = WebsocketCommunicator(application, f"/ws/{user.pk}/?token={token}")
    await tab.connect()
    await tab.receive_json_from(timeout=3)
    with caplog.at_level(logging.WARNING, logger="monitoring.consumers"):
        for _ in range(8):
            await tab.send_json_to({"type": "ping"})
        answers = [await tab.receive_output(timeout=3) for _ in range(6)]
        assert await tab.receive_nothing(timeout=0.3)  # the frames behind the close: dropped
    assert [a.get("code") for a in answers] == [None] * 5 + [1008]
    assert all(json.loads(a["text"])["type"] == "pong" for a in answers[:5])
    flood = [r for r in caplog.records if "faster than the inbound limit" in r.getMessage()]
    assert len(flood) == 1 and flood[0].user_id == user.pk
    await tab.disconnect()
