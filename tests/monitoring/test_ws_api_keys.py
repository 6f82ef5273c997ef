"""The WebSocket with API keys (issue 13, item 7), over a real socket to daphne in its own
process: a key opens the socket as a session token does, a revoked key closes it with 4401
within the re-check period, and a key bound to one broker account is refused."""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from tests.factories import api_client_for, make_account, make_user
from tests.servers import WsClient

pytestmark = pytest.mark.slow


def _open(server, user, raw: str) -> WsClient:
    # The key in the subprotocol header (`bearer, <key>`): it never appears in a URL or log.
    tab = WsClient(server.url(f"/ws/{user.pk}/"), subprotocols=["bearer", raw])
    tab.wait_for(lambda m: m["type"] == "connection_established")
    return tab


def test_a_revoked_api_key_closes_its_socket_with_4401_within_seconds(daphne_server):
    user = make_user()
    make_account(user=user)
    raw, key = create_api_key(user=user, name="stream", scope="read")
    other_raw, _other = create_api_key(user=user, name="still valid", scope="read")
    tab = _open(daphne_server, user, raw)
    keeper = _open(daphne_server, user, other_raw)
    tab.ws.send(json.dumps({"type": "ping"}))
    tab.wait_for(lambda m: m["type"] == "pong")

    started = time.monotonic()
    response = api_client_for(user).delete(f"/api/api-keys/{key.pk}")
    assert response.status_code == 204
    assert tab.wait_closed(15) == 4401, tab.close_code
    elapsed = time.monotonic() - started
    assert elapsed <= django_settings.WS_AUTH_RECHECK_SECONDS + 2, elapsed
    # The user's other key keeps its socket.
    keeper.ws.send(json.dumps({"type": "ping"}))
    keeper.wait_for(lambda m: m["type"] == "pong")
    assert keeper.close_code is None
    keeper.close()
    # And the revoked key cannot open a new one.
    again = WsClient(daphne_server.url(f"/ws/{user.pk}/?token={raw}"))
    assert again.wait_closed(10) == 4401


def test_an_api_key_for_another_users_id_is_4403(daphne_server):
    user, other = make_user(), make_user()
    raw, _key = create_api_key(user=user, name="mine", scope="trade")
    tab = WsClient(daphne_server.url(f"/ws/{other.pk}/?token={raw}"))
    assert tab.wait_closed(10) == 4403
    assert tab.messages == []


def test_a_key_bound_to_an_account_is_refused_with_4403(daphne_server):
    user = make_user()
    account = make_account(user=user)
    raw, _key = create_api_key(user=user, name="bound", scope="read", bound_account=account)
    tab = WsClient(daphne_server.url(f"/ws/{user.pk}/?token={raw}"))
    assert tab.wait_closed(10) == 4403
    assert tab.messages == []
    # The same key on the REST API: refused as well.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/orders").status_code == 403
