"""POST /api/algo-place-batch-orders: each item alone, results in input order."""

from __future__ import annotations

from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.models import Order, OrderEvent, OrderLeg
from tests.factories import batch_item, make_account, make_user

BAD = [
    {"trading_symbol": "NOPE"},  # unknown instrument
    {"no_of_lots": 0},  # no quantity
    {"sl_price": "100.00"},  # stop-loss above a BUY entry
    {"entry_price": "99.03"},  # off the tick
    {"targets": [{"price": "105.00", "lots": 1}]},  # targets cover 1 of 2 lots
    {"no_of_lots": "many"},  # not even a number
]


def test_a_batch_of_500_with_bad_items_places_the_good_ones_in_order(client, account, instrument):
    items = []
    bad_positions = set()
    for n in range(500):
        if n % 25 == 3:
            items.append(batch_item(n, **BAD[len(bad_positions) % len(BAD)]))
            bad_positions.add(n)
        else:
            items.append(batch_item(n))
    response = client.post(
        "/api/algo-place-batch-orders",
        {"account_id": account.pk, "orders": items},
        format="json",
    )
    assert response.status_code == 201
    results = response.json()["results"]
    assert [r["external_id"] for r in results] == [f"ext-{n}" for n in range(500)]
    for n, result in enumerate(results):
        if n in bad_positions:
            assert (result["status"], result["order_id"]) == ("error", None), result
            assert result["error"]
        else:
            assert result["status"] == "success", result
            assert result["order_status"] == "OPEN"
    good = 500 - len(bad_positions)
    assert Order.objects.filter(account=account, source="BATCH").count() == good
    placed = Order.objects.get(external_id="ext-0")
    assert [(Decimal(t["price"]), t["quantity"]) for t in placed.targets] == [
        (Decimal("105"), 1),
        (Decimal("110"), 1),
    ]


def test_percent_targets_round_down_and_the_last_takes_the_rest(client, account, instrument):
    response = client.post(
        "/api/algo-place-batch-orders",
        {"account_id": account.pk, "orders": [batch_item(1, no_of_lots=3)]},
        format="json",
    )
    assert response.json()["results"][0]["status"] == "success"
    order = Order.objects.get(external_id="ext-1")
    assert [t["quantity"] for t in order.targets] == [1, 2]


def test_a_broker_rejection_is_an_error_item_with_its_order(client, account, instrument, settings):
    settings.PAPER_STARTING_CASH = "10"
    response = client.post(
        "/api/algo-place-batch-orders",
        {"account_id": account.pk, "orders": [batch_item(1, no_of_lots=5000)]},
        format="json",
    )
    (result,) = response.json()["results"]
    assert response.status_code == 201
    assert (result["status"], result["code"], result["order_status"]) == (
        "error",
        "BROKER_REJECTED",
        "REJECTED",
    )
    assert Order.objects.get(pk=result["order_id"]).status == "REJECTED"


def test_more_than_500_items_is_a_400(client, account, instrument):
    response = client.post(
        "/api/algo-place-batch-orders",
        {"account_id": account.pk, "orders": [batch_item(n) for n in range(501)]},
        format="json",
    )
    assert response.status_code == 400
    assert "orders" in response.json()["details"]
    assert Order.objects.count() == 0


def test_a_batch_for_another_users_account_is_404(client, instrument):
    stranger = make_account(user=make_user())
    response = client.post(
        "/api/algo-place-batch-orders",
        {"account_id": stranger.pk, "orders": [batch_item(1)]},
        format="json",
    )
    assert response.status_code == 404
    assert Order.objects.count() == 0


def test_two_items_with_one_key_and_different_bodies_fail_alone_and_the_rest_is_sent(
    client, account, instrument
):
    items = [
        batch_item(1, client_order_id="same-key"),
        batch_item(2, client_order_id="same-key", entry_price="98.00"),
        batch_item(3),
    ]
    response = client.post(
        "/api/algo-place-batch-orders", {"account_id": account.pk, "orders": items}, format="json"
    )

    assert response.status_code == 201
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["success", "error", "success"]
    assert results[1]["error"]
    sent = Order.objects.filter(account=account, external_id__in=["ext-1", "ext-3"])
    assert sorted(o.status for o in sent) == ["OPEN", "OPEN"]
    assert not Order.objects.filter(account=account, status="PENDING").exists()


def test_a_replayed_batch_answers_with_the_first_orders_and_writes_nothing(
    client, account, instrument
):
    items = [batch_item(n, client_order_id=f"key-{n}") for n in range(3)]
    body = {"account_id": account.pk, "orders": items}
    first = client.post("/api/algo-place-batch-orders", body, format="json").json()["results"]
    written = (Order.objects.count(), OrderLeg.objects.count(), OrderEvent.objects.count())

    again = client.post("/api/algo-place-batch-orders", body, format="json")

    assert again.status_code == 201
    replayed = again.json()["results"]
    assert [r["order_id"] for r in replayed] == [r["order_id"] for r in first]
    assert {r["status"] for r in replayed} == {"success"}
    assert (Order.objects.count(), OrderLeg.objects.count(), OrderEvent.objects.count()) == written


def test_every_order_of_a_batch_is_written_whole_and_audited(client, trader, account, instrument):
    response = client.post(
        "/api/algo-place-batch-orders",
        {"account_id": account.pk, "orders": [batch_item(n) for n in range(3)]},
        format="json",
    )
    results = response.json()["results"]

    for n, result in enumerate(results):
        order = Order.objects.get(pk=result["order_id"])
        assert (order.user_id, order.account_id, order.instrument_id) == (
            trader.pk,
            account.pk,
            instrument.pk,
        )
        assert (order.symbol, order.exchange_segment, order.exchange_instrument_id) == (
            "RELIANCE",
            instrument.exchange_segment,
            instrument.exchange_instrument_id,
        )
        assert (order.kind, order.source, order.side, order.product_type) == (
            "BRACKET",
            "BATCH",
            "BUY",
            "MIS",
        )
        assert (order.quantity, order.order_type, order.status) == (2, "LIMIT", "OPEN")
        assert (order.limit_price, order.stop_price) == (Decimal("99"), None)
        assert (order.sl_price, order.sl_stop_price) == (Decimal("95"), None)
        assert order.targets == [
            {"price": "105.0000", "quantity": 1},
            {"price": "110.0000", "quantity": 1},
        ]
        assert (order.external_id, order.client_order_id) == (f"ext-{n}", None)
        assert order.external_id_day is not None and len(order.request_fingerprint) == 64
        assert (order.ltp, order.avg_fair_price) == (Decimal("100"), Decimal("100"))
        assert order.created_at is not None and order.updated_at is not None
        (leg,) = order.legs.all()
        assert (leg.account_id, leg.role, leg.order_type, leg.side) == (
            account.pk,
            "ENTRY",
            "LIMIT",
            "BUY",
        )
        assert (leg.quantity, leg.limit_price, leg.status) == (2, Decimal("99"), "OPEN")
        assert leg.broker_order_id and leg.unique_identifier and leg.submitted_at is not None
        events = list(order.events.order_by("id").values_list("kind", "leg_id", "actor"))
        assert events == [
            ("order_created", leg.pk, f"user:{trader.pk}"),
            ("leg_accepted", leg.pk, f"user:{trader.pk}"),
        ]


def test_a_batch_s_entries_are_recorded_sent_at_one_instant(client, account, instrument):
    """The broker's answers to one submission are recorded at one instant: the legs of a batch
    share their submitted_at, and their UPDATE joins only what differs from leg to leg (each
    one's broker order id)."""
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            "/api/algo-place-batch-orders",
            {"account_id": account.pk, "orders": [batch_item(n) for n in range(4)]},
            format="json",
        )
    assert [r["status"] for r in response.json()["results"]] == ["success"] * 4
    legs = OrderLeg.objects.filter(order__account=account, order__source="BATCH")
    assert len({leg.submitted_at for leg in legs}) == 1
    assert len({leg.broker_order_id for leg in legs}) == 4
    [update] = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE `order_legs`")
    ]
    assert "WITH v (`__pk`, `broker_order_id`) AS (VALUES" in update
