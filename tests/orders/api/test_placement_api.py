"""Placing orders over the API: shapes, audit, notifications, idempotency, rejections."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from channels.layers import get_channel_layer

from orders.models import Order, OrderEvent, OrderLeg
from tests.concurrency import in_threads
from tests.factories import (
    api_client_for,
    make_account,
    make_reliance_at_100,
    make_user,
    single_order_body,
    sync_from_broker,
)
from trading_site.core.realtime import flush_notifications, user_group

D = Decimal


def _body(account, **overrides):
    return single_order_body(
        account, **{"exchange_segment": "NSECM", "product_type": "MIS", **overrides}
    )


def test_a_limit_order_is_written_sent_and_answered_201(client, account, instrument):
    response = client.post("/api/orders", _body(account), format="json")
    assert response.status_code == 201, response.json()
    order = response.json()["order"]
    assert order["order_status"] == "OPEN"
    assert order["entry_order_status"] == "OPEN"
    assert order["broker_order_id"]
    assert order["symbol"] == "RELIANCE" and order["order_quantity"] == 10
    leg = OrderLeg.objects.get(order_id=order["id"])
    assert len(leg.unique_identifier) <= 20 and leg.broker_order_id == order["broker_order_id"]
    kinds = list(OrderEvent.objects.filter(order_id=order["id"]).values_list("kind", flat=True))
    assert kinds == ["order_created", "leg_accepted"]


def test_a_market_order_on_paper_fills_at_the_next_sync(client, account, instrument):

    response = client.post(
        "/api/orders", _body(account, order_type="MARKET", limit_price=None), format="json"
    )
    assert response.status_code == 201
    sync_from_broker(account)
    order = Order.objects.get(pk=response.json()["order"]["id"])
    assert (order.status, order.filled_quantity) == (Order.Status.FILLED, 10)


def test_the_owner_gets_an_order_update_after_commit(
    client, trader, account, instrument, django_capture_on_commit_callbacks
):
    # One event loop for the listener: a pub/sub channel layer lives in the loop it was
    # created in, as a consumer's does.
    layer = get_channel_layer()
    loop = asyncio.new_event_loop()
    try:
        channel = loop.run_until_complete(layer.new_channel())
        loop.run_until_complete(layer.group_add(user_group(trader.pk), channel))
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/api/orders", _body(account), format="json")
        assert flush_notifications(timeout=10)
        event = loop.run_until_complete(asyncio.wait_for(layer.receive(channel), 10))
    finally:
        loop.close()
    message = event["message"]
    assert message["type"] == "order_update"
    assert message["order_id"] == response.json()["order"]["id"]
    assert message["status"] in ("PENDING", "OPEN")


def test_a_broker_rejection_is_422_with_the_stored_order(client, account, instrument, settings):
    settings.PAPER_STARTING_CASH = "10"  # the paper exchange refuses: not enough margin
    response = client.post("/api/orders", _body(account, order_quantity=5000), format="json")
    assert response.status_code == 422, response.json()
    body = response.json()
    assert body["code"] == "BROKER_REJECTED"
    order = Order.objects.get(pk=body["details"]["order_id"])
    assert order.status == Order.Status.REJECTED
    assert body["details"]["reject_reason"]
    assert OrderLeg.objects.get(order=order).reject_reason == body["details"]["reject_reason"]


def test_the_same_idempotency_key_and_body_returns_the_first_order_with_200(
    client, account, instrument
):
    first = client.post("/api/orders", _body(account), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post("/api/orders", _body(account), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["order"]["id"] == again.json()["order"]["id"]
    assert Order.objects.count() == 1


def test_client_order_id_in_the_body_works_like_the_header(client, account, instrument):
    body = _body(account, client_order_id="c-1")
    assert client.post("/api/orders", body, format="json").status_code == 201
    assert client.post("/api/orders", body, format="json").status_code == 200
    assert Order.objects.count() == 1


def test_the_same_key_with_another_body_is_409(client, account, instrument):
    client.post("/api/orders", _body(account), format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    response = client.post(
        "/api/orders", _body(account, order_quantity=20), format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "CONFLICT"
    assert Order.objects.count() == 1


def test_keys_are_per_user(client, account, instrument):
    other = make_user()
    other_account = make_account(user=other)
    client.post("/api/orders", _body(account), format="json", HTTP_IDEMPOTENCY_KEY="shared")
    response = api_client_for(other).post(
        "/api/orders", _body(other_account), format="json", HTTP_IDEMPOTENCY_KEY="shared"
    )
    assert response.status_code == 201
    assert Order.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_identical_requests_create_exactly_one_order():
    user = make_user()
    account = make_account(user=user)
    make_reliance_at_100()
    clients = [api_client_for(user) for _ in range(20)]

    def post(n: int) -> tuple[int, int]:
        response = clients[n].post(
            "/api/orders", _body(account), format="json", HTTP_IDEMPOTENCY_KEY="burst-1"
        )
        return response.status_code, response.json().get("order", {}).get("id")

    answers = in_threads(20, post, timeout=120)

    assert len(answers) == 20
    assert Order.objects.filter(user=user).count() == 1
    assert OrderLeg.objects.filter(account=account).count() == 1
    assert {order_id for _, order_id in answers} == {Order.objects.get(user=user).pk}
    assert sorted(code for code, _ in answers) == [200] * 19 + [201]


def test_an_algo_order_is_a_bracket_with_one_target_for_all_lots(client, account, future):
    response = client.post(
        "/api/algo-orders",
        {
            "account_id": account.pk,
            "trading_symbol": "NIFTYFUT",
            "exchange_token": str(future.exchange_instrument_id),
            "no_of_lots": 2,
            "entry_price": "99.00",
            "entry_stop_price": "98.50",
            "sl_price": "95.00",
            "sl_stop_price": "95.50",
            "tp_price": "105.00",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    order = Order.objects.get(pk=response.json()["order"]["id"])
    assert (order.kind, order.source, order.quantity) == ("BRACKET", "ALGO", 100)
    assert (order.order_type, order.limit_price, order.stop_price) == (
        "STOPLIMIT",
        D("99.00"),
        D("98.50"),
    )
    assert [(D(t["price"]), t["quantity"]) for t in order.targets] == [(D("105"), 100)]
    assert list(order.legs.values_list("role", flat=True)) == ["ENTRY"]
