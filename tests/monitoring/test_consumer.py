"""The WebSocket at /ws/<user_id>/ (SPEC 9), through the real ASGI application (origin check,
session middleware, routing) and the Redis channel layer."""

from __future__ import annotations

import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client

from monitoring import presence
from tests.factories import make_trader_with_token
from trading_site.asgi import application
from trading_site.core.realtime import anotify_user

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _window_open(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True


_user_with_token = sync_to_async(make_trader_with_token)


def _communicator(path: str, *, headers=None, subprotocols=None) -> WebsocketCommunicator:
    return WebsocketCommunicator(
        application, path, headers=headers or [], subprotocols=subprotocols
    )


async def _close_code(communicator) -> int:
    message = await communicator.receive_output(timeout=3)
    assert message["type"] == "websocket.close", message
    return message.get("code")


@pytest.mark.parametrize("query", ["", "?token=not-a-token"], ids=["no-token", "invalid-token"])
async def test_without_valid_credentials_the_socket_closes_4401(query):
    user, _ = await _user_with_token()
    communicator = _communicator(f"/ws/{user.pk}/{query}")
    connected, _ = await communicator.connect()
    assert connected
    assert await _close_code(communicator) == 4401


async def test_another_users_id_closes_4403_without_any_data():
    _user, token = await _user_with_token()
    other, _ = await _user_with_token()
    communicator = _communicator(f"/ws/{other.pk}/?token={token}")
    await communicator.connect()
    # The very first thing the client gets is the close: no data frame before it.
    assert await _close_code(communicator) == 4403


async def test_token_in_query_string_gets_connection_established():
    user, token = await _user_with_token()
    communicator = _communicator(f"/ws/{user.pk}/?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    hello = await communicator.receive_json_from(timeout=3)
    assert hello["type"] == "connection_established"
    assert hello["user_id"] == user.pk
    assert uuid.UUID(hello["connection_id"])
    assert hello["timestamp"]
    await communicator.disconnect()


async def test_token_in_subprotocol_header_is_answered_with_bearer():
    user, token = await _user_with_token()
    communicator = _communicator(f"/ws/{user.pk}/", subprotocols=["bearer", token])
    connected, subprotocol = await communicator.connect()
    assert connected
    assert subprotocol == "bearer"
    hello = await communicator.receive_json_from(timeout=3)
    assert hello["type"] == "connection_established"
    await communicator.disconnect()


async def test_browser_session_cookie_authenticates():
    user, _ = await _user_with_token()
    client = Client()
    await sync_to_async(client.force_login)(user)
    cookie = f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"
    communicator = _communicator(
        f"/ws/{user.pk}/",
        headers=[
            (b"cookie", cookie.encode()),
            (b"origin", b"http://localhost"),
            (b"host", b"localhost"),
        ],
    )
    connected, _ = await communicator.connect()
    assert connected
    hello = await communicator.receive_json_from(timeout=3)
    assert hello["user_id"] == user.pk
    await communicator.disconnect()


async def test_foreign_origin_is_refused_at_the_handshake():
    user, token = await _user_with_token()
    communicator = _communicator(
        f"/ws/{user.pk}/?token={token}", headers=[(b"origin", b"http://evil.example.com")]
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_ping_gets_pong_and_malformed_input_gets_an_error_but_the_socket_stays():
    user, token = await _user_with_token()
    communicator = _communicator(f"/ws/{user.pk}/?token={token}")
    await communicator.connect()
    await communicator.receive_json_from(timeout=3)
    await communicator.send_to(text_data="{not json")
    assert (await communicator.receive_json_from(timeout=3))["type"] == "error"
    await communicator.send_to(text_data=json.dumps({"type": "launch_rockets"}))
    unknown = await communicator.receive_json_from(timeout=3)
    assert unknown["type"] == "error" and "launch_rockets" in unknown["error"]
    await communicator.send_to(text_data=json.dumps([1, 2]))
    assert (await communicator.receive_json_from(timeout=3))["type"] == "error"
    await communicator.send_json_to({"type": "ping"})
    assert (await communicator.receive_json_from(timeout=3))["type"] == "pong"
    await communicator.disconnect()


async def test_oversized_frame_closes_the_socket_with_1009(settings):
    settings.WS_MAX_MESSAGE_BYTES = 64
    user, token = await _user_with_token()
    communicator = _communicator(f"/ws/{user.pk}/?token={token}")
    await communicator.connect()
    await communicator.receive_json_from(timeout=3)
    await communicator.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * 100}))
    assert await _close_code(communicator) == 1009


async def test_two_tabs_both_receive_and_presence_lasts_while_one_is_open():
    user, token = await _user_with_token()
    tabs = [_communicator(f"/ws/{user.pk}/?token={token}") for _ in range(2)]
    for tab in tabs:
        await tab.connect()
        await tab.receive_json_from(timeout=3)
    assert await sync_to_async(presence.connection_count)(user.pk) == 2
    await anotify_user(
        user.pk, {"type": "order_update", "order_id": 7, "status": "OPEN", "details": {}}
    )
    for tab in tabs:
        message = await tab.receive_json_from(timeout=3)
        assert message == {"type": "order_update", "order_id": 7, "status": "OPEN", "details": {}}
    await tabs[0].disconnect()
    assert await sync_to_async(presence.is_user_connected)(user.pk)
    await tabs[1].disconnect()
    assert not await sync_to_async(presence.is_user_connected)(user.pk)


async def test_another_users_messages_never_arrive():
    user, token = await _user_with_token()
    other, _ = await _user_with_token()
    communicator = _communicator(f"/ws/{user.pk}/?token={token}")
    await communicator.connect()
    await communicator.receive_json_from(timeout=3)
    await anotify_user(other.pk, {"type": "order_update", "order_id": 1})
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


async def test_outside_the_window_market_closed_gives_next_opening_then_closes(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = False
    settings.TRADING_WEEKDAYS = []  # never a trading day: no next opening within a year
    user, token = await _user_with_token()
    communicator = _communicator(f"/ws/{user.pk}/?token={token}")
    await communicator.connect()
    message = await communicator.receive_json_from(timeout=3)
    assert message["type"] == "market_closed"
    assert "next_opening" in message
    assert await _close_code(communicator) == 4000
    assert not await sync_to_async(presence.is_user_connected)(user.pk)


async def test_market_closed_names_the_next_opening(settings):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    today = datetime.now(ZoneInfo("Asia/Kolkata")).date()
    tomorrow = today + timedelta(days=1)
    settings.TRADING_WINDOW_ALWAYS_OPEN = False
    settings.TRADING_WEEKDAYS = [tomorrow.weekday()]  # closed today, open tomorrow
    user, token = await _user_with_token()
    communicator = _communicator(f"/ws/{user.pk}/?token={token}")
    await communicator.connect()
    message = await communicator.receive_json_from(timeout=3)
    assert message["type"] == "market_closed"
    assert message["next_opening"] == f"{tomorrow.isoformat()}T09:26:00+05:30"
    assert await _close_code(communicator) == 4000
