"""Hostile text through the public surfaces, end to end: what a field takes is stored byte for
byte and listed back the same by GET /api/orders (whose page is one raw statement: every
filter a parameter, never SQL text); what it refuses is a 400 in the surface's own error
envelope with nothing written. Never a 500, never a value written differently."""

from __future__ import annotations

import json

import pytest

from accounts.api_keys import create_api_key
from accounts.models import ApiKey, Strategy
from orders.alerts import services as alerts
from orders.alerts.models import ReceivedAlert
from orders.models import Order
from tests.factories import (
    batch_item,
    bracket_order_body,
    make_strategy,
    openalgo_order_body,
    single_order_body,
)

pytestmark = pytest.mark.django_db

# Texts that close a quoted SQL literal early, end on an escape, look like parameters or
# comments, or take the server's utf8mb4: each must come back exactly as sent.
STORED_AS_SENT = [
    "x'); DELETE FROM orders_order; --",
    'x"); DELETE FROM orders_order; --',
    "ends in a backslash\\",
    "\\'",
    "`back` \"double\" 'single'",
    "%s %% %(x)s {0} {}",
    "\x1a ctrl-z and a\ttab",
    "¿' ＇ ʼ’ ₹ ünïcode 🚀",
]


def _post(client, path: str, body: dict):
    """The body as a client's JSON encoder sends it (ASCII-only: "\\ud83d\\ude80" for 🚀)."""
    return client.post(path, data=json.dumps(body), content_type="application/json")


def _listed(client, **filters) -> list[dict]:
    response = client.get("/api/orders", filters)
    assert response.status_code == 200, response.content[:300]
    return response.json()["orders"]


@pytest.fixture
def market_open(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True


@pytest.mark.parametrize("text", STORED_AS_SENT)
def test_free_text_is_stored_as_sent_listed_back_the_same_and_found_by_its_filter(
    client, trader, account, instrument, market_open, text
):
    make_strategy(user=trader, name=text)
    make_strategy(user=trader, name="plain")
    external_id, key = f"{text[:55]}-single", f"{text[:58]}-key"
    response = _post(
        client,
        "/api/orders",
        single_order_body(
            account,
            exchange_segment="NSECM",
            product_type="MIS",
            external_id=external_id,
            client_order_id=key,
            strategy_name=text,
        ),
    )
    assert response.status_code == 201, response.content[:300]
    bracket = _post(
        client,
        "/api/algo-orders",
        bracket_order_body(account, external_id=f"{text[:55]}-bracket", strategy_name=text),
    )
    assert bracket.status_code == 201, bracket.content[:300]
    # An order of another strategy, which no filter below may find.
    other = _post(client, "/api/orders", single_order_body(account, strategy_name="plain"))
    assert other.status_code == 201, other.content[:300]

    order = Order.objects.select_related("strategy").get(pk=response.json()["order"]["id"])
    assert (order.external_id, order.client_order_id, order.strategy.name) == (
        external_id,
        key,
        text,
    )
    listed = _listed(client, strategy=text)
    assert [(o["external_id"], o["client_order_id"], o["strategy"]) for o in listed] == [
        (f"{text[:55]}-bracket", None, text),
        (external_id, key, text),
    ]
    assert len(_listed(client)) == 3


@pytest.mark.parametrize(
    "filters",
    [
        {"symbol": "RELIANCE' OR '1'='1"},
        {"symbol": "%"},
        {"symbol": "RELIANC_"},
        {"symbol": "RELIANCE\\"},
        {"strategy": "%"},
        {"strategy": "x' OR 1=1 -- "},
        {"strategy": "plain' OR '1'='1"},
        {"status": "OPEN' OR '1'='1"},
        {"since": "2026-01-01' OR '1'='1"},
        {"account_id": "1 OR 1=1"},
        {"limit": "1; DROP TABLE orders_order"},
        {"offset": "0 UNION SELECT 1"},
    ],
)
def test_a_list_filter_is_a_value_compared_exactly_never_sql(
    client, trader, account, instrument, filters
):
    make_strategy(user=trader, name="plain")
    placed = _post(client, "/api/orders", single_order_body(account, strategy_name="plain"))
    assert placed.status_code == 201, placed.content[:300]

    response = client.get("/api/orders", filters)

    if {"status", "since", "account_id", "limit", "offset"} & set(filters):
        assert response.status_code == 400
        assert response.json()["code"] == "VALIDATION_ERROR"
    else:
        assert response.status_code == 200
        assert response.json()["orders"] == [] and response.json()["total"] == 0
    assert len(_listed(client)) == 1


@pytest.mark.parametrize(
    "field,value",
    [
        ("external_id", "nul\x00inside"),
        ("external_id", "x" * 65),
        ("client_order_id", "k" * 65),
        ("strategy_name", "s\x00"),
        ("strategy_name", "s" * 101),
        ("external_id", "lone \ud800"),  # sent as JSON's "\ud800"
        ("order_side", "\udc00"),  # an error that would echo the value back
        ("symbol", "REL\ud800"),
    ],
)
def test_text_a_field_refuses_is_a_400_and_nothing_is_written(
    client, account, instrument, market_open, field, value
):
    response = _post(client, "/api/orders", single_order_body(account, **{field: value}))

    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert not Order.objects.exists() and not Strategy.objects.exists()


def test_a_batch_item_with_a_lone_surrogate_is_a_400_for_the_whole_body_not_a_500(
    client, account, instrument, market_open
):
    """Its error result echoed the item's external_id, which no JSON renderer can encode:
    a 500 after the other items were placed."""
    items = [batch_item(1), batch_item(2, external_id="x\ud800", no_of_lots=0)]

    response = _post(
        client, "/api/algo-place-batch-orders", {"account_id": account.pk, "orders": items}
    )

    assert response.status_code == 400, response.content[:300]
    assert "lone surrogate" in response.json()["error"]
    assert not Order.objects.exists()


def test_batch_items_keep_their_free_text_as_sent(client, account, instrument, market_open):
    items = [batch_item(n, external_id=text) for n, text in enumerate(STORED_AS_SENT)]
    items.append(batch_item(99, external_id="nul\x00", trading_symbol="RELIANCE"))

    response = _post(
        client, "/api/algo-place-batch-orders", {"account_id": account.pk, "orders": items}
    )

    assert response.status_code == 201, response.content[:300]
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["success"] * len(STORED_AS_SENT) + ["error"]
    assert [r["external_id"] for r in results] == [*STORED_AS_SENT, "nul\x00"]
    stored = dict(Order.objects.values_list("pk", "external_id"))
    assert [stored[r["order_id"]] for r in results[:-1]] == STORED_AS_SENT
    assert sorted(o["external_id"] for o in _listed(client)) == sorted(STORED_AS_SENT)


# ---- the OpenAlgo-compatible API ------------------------------------------------------------


@pytest.fixture
def openalgo_key(trader, account, market_open) -> str:
    key, _ = create_api_key(
        user=trader, name="openalgo", scope=ApiKey.Scope.TRADE, bound_account=account
    )
    return key


def _placeorder(client, key: str, **fields):
    return _post(client, "/api/v1/placeorder", openalgo_order_body(key, **fields))


@pytest.mark.parametrize("text", STORED_AS_SENT)
def test_an_openalgo_strategy_name_is_stored_as_sent_and_listed_back(
    client, instrument, openalgo_key, text
):
    response = _placeorder(client, openalgo_key, strategy=text)

    assert response.status_code == 200, response.content[:300]
    order = Order.objects.select_related("strategy").get(pk=int(response.json()["orderid"]))
    assert order.strategy.name == text
    assert [o["id"] for o in _listed(client, strategy=text)] == [order.pk]


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"strategy": "s\x00"}, "strategy: must not contain NUL characters"),
        ({"symbol": "RELIANCE\x00"}, "symbol: must not contain NUL characters"),
        ({"strategy": "s\ud800"}, "lone surrogate"),
        ({"symbol": "\udfffRELIANCE"}, "lone surrogate"),
        ({"price": "1e999999999"}, "price: '1e999999999' is not a number"),
        ({"quantity": "1e999999"}, "quantity: must be at most 2147483647 in size"),
    ],
)
def test_openalgo_text_or_numbers_it_cannot_take_are_a_400_that_writes_nothing(
    client, instrument, openalgo_key, fields, message
):
    response = _placeorder(client, openalgo_key, **fields)

    assert response.status_code == 400, response.content[:300]
    assert response.json()["status"] == "error" and message in response.json()["message"]
    assert not Order.objects.exists() and not Strategy.objects.exists()


# ---- alert webhooks -------------------------------------------------------------------------


@pytest.fixture
def webhook(trader, account, instrument, market_open):
    strategy = Strategy.objects.create(user=trader, name="Breakout")
    return alerts.save_webhook(actor="test", strategy=strategy, account=account)


@pytest.mark.parametrize(
    "path,fields,field",
    [
        ("hooks/alerts", {"id": "tv\x00"}, "id"),
        ("hooks/alerts", {"symbol": "RELIANCE\x00"}, "symbol"),
        ("hooks/alerts", {"price": "1e999999999", "order_type": "LIMIT"}, "price"),
        ("strategy/webhook", {"position_size": "1e999999999"}, "position_size"),
    ],
)
def test_an_alert_with_text_or_numbers_it_cannot_take_is_a_400_that_places_nothing(
    client, webhook, path, fields, field
):
    body = {"symbol": "RELIANCE", "action": "BUY", "id": "tv-1", **fields}
    if path == "hooks/alerts":
        body.setdefault("quantity", "1")
    elif "position_size" not in body:
        body["position_size"] = "1"

    response = _post(client, f"/{path}/{webhook.public_id}/{webhook.secret}", body)

    assert response.status_code == 400, response.content[:300]
    assert field in response.json()["details"]
    assert not Order.objects.exists()
    alert = ReceivedAlert.objects.get()
    assert (alert.outcome, alert.http_status) == (ReceivedAlert.Outcome.INVALID, 400)


def test_an_alert_id_is_kept_as_sent(client, webhook):
    text = STORED_AS_SENT[0]
    body = {"symbol": "RELIANCE", "action": "BUY", "quantity": "1", "id": text}

    response = _post(client, f"/hooks/alerts/{webhook.public_id}/{webhook.secret}", body)

    assert response.status_code == 201, response.content[:300]
    assert response.json()["alert_id"] == text
    assert ReceivedAlert.objects.get().alert_id == text
    assert Order.objects.get().client_order_id == f"alert:{webhook.pk}:{text}"
