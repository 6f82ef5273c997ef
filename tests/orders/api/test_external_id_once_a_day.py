"""An external_id (the client's own id of an order) is unique per account and trading day:
the API's repeat is a 409 in the error envelope and writes nothing; a batch's repeated item
fails alone; the same Idempotency-Key is still a replay, and an order not sent gives its
external_id back with its key."""

from __future__ import annotations

import pytest

from orders.brokers.paper.models import PaperOrder
from orders.models import Order, OrderEvent, OrderLeg
from tests.factories import make_account, single_order_body


@pytest.fixture(autouse=True)
def _window_open(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.PAPER_REJECT_RATE = "0"


def _single(account, **extra) -> dict:
    return single_order_body(account, **({"order_quantity": 5} | extra))


def _state() -> tuple:
    return (
        Order.objects.count(),
        OrderLeg.objects.count(),
        OrderEvent.objects.count(),
        PaperOrder.objects.count(),
    )


def test_the_api_repeat_of_an_external_id_the_same_day_is_409_and_writes_nothing(
    client, account, instrument
):
    first = client.post("/api/orders", _single(account, external_id="ext-1"), format="json")
    assert first.status_code == 201, first.content
    before = _state()

    again = client.post(
        "/api/orders", _single(account, external_id="ext-1", order_quantity=6), format="json"
    )
    bracket = client.post(
        "/api/algo-orders",
        {
            "account_id": account.pk,
            "trading_symbol": "RELIANCE",
            "no_of_lots": 1,
            "entry_price": "99",
            "sl_price": "95",
            "tp_price": "110",
            "external_id": "ext-1",
        },
        format="json",
    )

    for answer in (again, bracket):
        assert answer.status_code == 409, answer.content
        body = answer.json()
        assert body["code"] == "CONFLICT"
        assert "ext-1" in body["error"]
        assert body["details"]["order_id"] == first.json()["order"]["id"]
        assert body["details"]["external_id"] == [
            f"already used today by order {first.json()['order']['id']}"
        ]
    assert _state() == before


def test_the_same_idempotency_key_still_replays_the_first_order(client, account, instrument):
    body = _single(account, external_id="ext-2")
    first = client.post("/api/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    replay = client.post("/api/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert (first.status_code, replay.status_code) == (201, 200)
    assert Order.objects.count() == 1


def test_another_account_may_use_the_same_external_id(client, trader, account, instrument):
    other = make_account(user=trader)
    assert (
        client.post("/api/orders", _single(account, external_id="e"), format="json").status_code
        == 201
    )
    assert (
        client.post("/api/orders", _single(other, external_id="e"), format="json").status_code
        == 201
    )


def test_a_batch_item_repeating_an_external_id_fails_alone(client, account, instrument):
    item = {"trading_symbol": "RELIANCE", "no_of_lots": 1, "entry_price": "99", "sl_price": "95"}
    answer = client.post(
        "/api/algo-place-batch-orders",
        {
            "account_id": account.pk,
            "orders": [
                {**item, "external_id": "b-1"},
                {**item, "external_id": "b-1"},
                {**item, "external_id": "b-2"},
            ],
        },
        format="json",
    )
    assert answer.status_code == 201
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["success", "error", "success"]
    assert results[1]["code"] == "CONFLICT"
    assert sorted(Order.objects.values_list("external_id", flat=True)) == ["b-1", "b-2"]
    # The next batch the same day: the repeat fails, the rest is placed.
    later = client.post(
        "/api/algo-place-batch-orders",
        {"account_id": account.pk, "orders": [{**item, "external_id": "b-2"}, item]},
        format="json",
    ).json()["results"]
    assert [r["status"] for r in later] == ["error", "success"]
    assert "already used on this account today" in later[0]["error"]
    assert Order.objects.count() == 3
    # An item without an id first changes nothing: the repeat behind it still fails alone.
    mixed = client.post(
        "/api/algo-place-batch-orders",
        {"account_id": account.pk, "orders": [item, {**item, "external_id": "b-1"}]},
        format="json",
    ).json()["results"]
    assert [r["status"] for r in mixed] == ["success", "error"]
    assert "already used today" in mixed[1]["details"]["external_id"][0]
    assert Order.objects.count() == 4
