"""Hostile request bodies (issue 10, items 3 and 4): JSON nested 1,000 levels deep in 2 KB
and 10 MB bodies were 500s with a traceback logged each time. Now: 400 (deep) and 413 (big)
in the error envelope under /api/, the product's own 413 page elsewhere, and nothing logged
at ERROR. The size limit still fits the largest legitimate body, a batch of 500 orders."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest

from orders.models import Order
from tests.factories import (
    DEFAULT_PASSWORD,
    api_client_for,
    make_account,
    make_instrument,
    make_one_of_everything,
    make_strategy,
    make_user,
)
from tests.routes import api_routes

DEEP_JSON = "[" * 1000 + "]" * 1000  # 2,000 bytes
DEEP_OBJECT = '{"a":' * 1000 + "1" + "}" * 1000
TEN_MB = 10 * 1024 * 1024


def _api_routes():
    for route, callback in api_routes():
        view = getattr(callback, "cls", None)
        if view is None:
            continue
        for method in ("post", "put", "patch"):
            if hasattr(view, method):
                yield route, method


API_BODY_ROUTES = sorted(set(_api_routes()))
BODYLESS = {"api/logout", "api/accounts/<int:pk>/connect", "api/orders/<int:order_id>/cancel"}


def test_every_json_endpoint_is_covered():
    assert len(API_BODY_ROUTES) >= 18
    assert ("api/login", "post") in API_BODY_ROUTES
    assert ("api/algo-place-batch-orders", "post") in API_BODY_ROUTES


@pytest.fixture
def owned(db):
    """A user with one of everything, so object routes reach their body parsing."""
    user = make_user(is_staff=True)  # staff may write fair prices
    return user, make_one_of_everything(user=user, instrument=make_instrument())


def _path(route: str, ids: dict) -> str:
    return "/" + re.sub(r"<int:(\w+)>", lambda m: str(ids[m.group(1)]), route)


def _assert_no_error_logged(caplog):
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def _refusal_of(owned, route: str, method: str, body: str, caplog) -> dict | None:
    """Send `body` to `route` as the owner: nothing logged at ERROR, and a 400 whose payload
    is returned; None for a route that never reads a body (after checking it is no 500)."""
    user, ids = owned
    client = api_client_for(user)
    with caplog.at_level(logging.INFO):
        response = getattr(client, method)(
            _path(route, ids), data=body, content_type="application/json"
        )
    _assert_no_error_logged(caplog)
    if route in BODYLESS:  # never reads a body, so nothing to parse
        assert response.status_code < 500
        return None
    assert response.status_code == 400, (route, method, response.content[:300])
    return response.json()


@pytest.mark.parametrize("route,method", API_BODY_ROUTES)
@pytest.mark.parametrize("body", [DEEP_JSON, DEEP_OBJECT], ids=["array", "object"])
def test_deep_json_is_a_400_on_every_json_endpoint(owned, route, method, body, caplog, settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    payload = _refusal_of(owned, route, method, body, caplog)
    if payload is None:
        return
    if route.startswith("api/v1/"):  # the OpenAlgo API answers in OpenAlgo's envelope
        assert payload["status"] == "error" and "deeper than" in payload["message"]
    else:
        assert payload["code"] == "VALIDATION_ERROR"
        assert "deeper than" in payload["error"]
    assert Order.objects.filter(user=owned[0]).count() == 1  # nothing placed


# A lone surrogate (JSON's "\\ud800" unpaired) has no UTF-8 form: the driver cannot store it
# and the renderer cannot echo it (a refusal that quotes the value was a 500).
LONE_SURROGATE = '{"account_id": 1, "symbol": "\\ud800", "order_side": "\\udc00", "x": ["\\udfff"]}'


@pytest.mark.parametrize("route,method", API_BODY_ROUTES)
def test_a_lone_surrogate_is_a_400_on_every_json_endpoint(owned, route, method, caplog, settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    payload = _refusal_of(owned, route, method, LONE_SURROGATE, caplog)
    if payload is None:
        return
    message = payload["message"] if route.startswith("api/v1/") else payload["error"]
    assert "lone surrogate" in message
    assert Order.objects.filter(user=owned[0]).count() == 1


@pytest.mark.django_db
def test_a_surrogate_pair_is_one_character_and_still_parses():
    """An ASCII-only encoder (Python's json.dumps) sends 🚀 as "\\ud83d\\ude80"; a backslash
    before "ud800" is text, not an escape."""
    user = make_user()
    client = api_client_for(user)
    name = "🚀 \\ud800"
    response = client.post(
        "/api/strategies", data=json.dumps({"name": name}), content_type="application/json"
    )
    assert response.status_code == 201, response.content[:300]
    assert user.strategies.get().name == name


@pytest.mark.django_db
def test_deep_json_login_over_a_real_socket_is_a_400(live_server, caplog):
    with caplog.at_level(logging.INFO):
        response = httpx.post(
            f"{live_server.url}/api/login",
            content=DEEP_JSON,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    _assert_no_error_logged(caplog)


@pytest.mark.django_db
def test_json_within_the_depth_limit_still_parses():
    user = make_user()
    response = api_client_for(user).post(
        "/api/login",
        data=json.dumps({"username": user.username, "password": DEFAULT_PASSWORD}),
        content_type="application/json",
    )
    assert response.status_code == 200


# ---- 10 MB bodies ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/login", "/api/orders", "/api/algo-place-batch-orders"])
def test_ten_megabyte_api_body_is_413_in_the_envelope(live_server, path, caplog):
    user = make_user()
    token = api_client_for(user)._credentials["HTTP_AUTHORIZATION"]
    body = json.dumps({"username": "x", "password": "y", "padding": "a" * TEN_MB})
    with caplog.at_level(logging.INFO):
        response = httpx.post(
            f"{live_server.url}{path}",
            content=body,
            headers={"Content-Type": "application/json", "Authorization": token},
            timeout=30,
        )
    assert response.status_code == 413, response.text[:300]
    payload = response.json()
    assert payload["code"] == "VALIDATION_ERROR"
    assert payload["details"]["max_bytes"] > 0
    _assert_no_error_logged(caplog)


@pytest.mark.django_db
def test_ten_megabyte_form_post_is_a_plain_413_page(live_server, caplog, settings):
    settings.CSRF_COOKIE_SECURE = False  # plain http to the test server
    with httpx.Client(base_url=live_server.url, timeout=30) as browser:
        assert browser.get("/login/").status_code == 200  # the CSRF cookie
        with caplog.at_level(logging.INFO):
            response = browser.post(
                "/login/",
                content=b"username=x&password=" + b"a" * TEN_MB,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Request too large" in response.text
    assert "Traceback" not in response.text
    _assert_no_error_logged(caplog)


@pytest.mark.django_db
def test_a_batch_of_500_orders_still_fits_under_the_size_limit(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.RATE_LIMIT_ENABLED = False
    user = make_user()
    account = make_account(user=user)
    instrument = make_instrument()
    strategy = make_strategy(user=user, name="S" * 100)
    orders = [
        {
            "trading_symbol": instrument.trading_symbol,
            "exchange_segment": instrument.exchange_segment,
            "order_side": "BUY",
            "product_type": "MIS",
            "no_of_lots": 1,
            "entry_price": "100.05",
            "sl_price": "95.05",
            "targets": [
                {"price": "105.05", "percent": "50"},
                {"price": "110.05", "percent": "50"},
            ],
            "strategy_name": strategy.name,
            "external_id": f"{n:06d}".ljust(64, "x"),  # the longest allowed
        }
        for n in range(500)
    ]
    body = json.dumps({"account_id": account.pk, "orders": orders}, indent=2)
    assert len(body) < settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = api_client_for(user).post(
        "/api/algo-place-batch-orders", data=body, content_type="application/json"
    )
    assert response.status_code == 201, response.content[:500]
    assert len(response.json()["results"]) == 500
