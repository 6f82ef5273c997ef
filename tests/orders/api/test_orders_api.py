"""GET/PATCH /api/orders, cancel, kill switch, and isolation between users."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.brokers.paper.models import PaperOrder
from orders.models import Order, OrderLeg
from orders.services import place_bracket_order, place_protective_legs, place_single_order
from tests.factories import (
    api_client_for,
    bracket_request,
    legs_of,
    make_account,
    make_fair_price,
    make_leg,
    make_order,
    make_strategy,
    make_user,
    single_request,
    sync_from_broker,
)

D = Decimal


# ---- list --------------------------------------------------------------------------------------


def test_the_list_shows_the_callers_orders_newest_first_with_leg_statuses(
    client, trader, account, instrument
):
    older = make_order(user=trader, account=account, instrument=instrument)
    newer = make_order(user=trader, account=account, instrument=instrument, kind="BRACKET")
    OrderLeg.objects.create(
        order=newer,
        account=account,
        role="STOP_LOSS",
        order_type="STOPMARKET",
        side="SELL",
        quantity=10,
        stop_price=D("95"),
        unique_identifier="SL1",
        status="OPEN",
    )
    make_order(user=make_user(), account=make_account(), instrument=instrument)

    body = client.get("/api/orders").json()

    assert [o["id"] for o in body["orders"]] == [newer.pk, older.pk]
    assert (body["total"], body["limit"], body["offset"]) == (2, 50, 0)
    first = body["orders"][0]
    assert (first["entry_order_status"], first["sl_order_status"], first["tp_order_status"]) == (
        "OPEN",
        "OPEN",
        None,
    )
    for name in ("symbol", "order_status", "pnl", "open_position"):
        assert name in first


def test_a_list_row_shows_every_column_as_the_order_itself_shows_it(
    client, trader, account, instrument
):
    """The list renders plain rows (selectors.OrderRow), the order's own endpoint a model:
    every column the two share must read the same, strategy, prices, targets and times
    included."""
    order = make_order(
        user=trader,
        account=account,
        instrument=instrument,
        kind="BRACKET",
        strategy=make_strategy(user=trader, name="momentum"),
        client_order_id="cli-1",
        external_id="ext-1",
        stop_price=D("98.50"),
        sl_price=D("95.25"),
        sl_stop_price=D("95.50"),
        targets=[{"price": "105.00", "percent": "100"}],
        pnl=D("-12.40"),
        ltp=D("99.10"),
        buy_fair_price=D("99.05"),
        regeneration_count=2,
        archived_at=timezone.now(),
    )
    make_leg(order=order, broker_order_id=None, role="TAKE_PROFIT", side="SELL", status="REJECTED")

    [row] = client.get("/api/orders").json()["orders"]
    detail = client.get(f"/api/orders/{order.pk}").json()

    shown = {key: value for key, value in detail.items() if key not in ("legs", "events")}
    assert row == shown
    assert (row["strategy"], row["client_order_id"], row["archived"]) == ("momentum", "cli-1", True)
    assert (row["sl_price"], row["tp_order_status"], row["regeneration_count"]) == (
        "95.2500",
        "REJECTED",
        2,
    )


def test_the_list_filters_by_account_status_symbol_strategy_and_time(
    client, trader, account, instrument, future
):
    other_account = make_account(user=trader)
    momentum = make_strategy(user=trader, name="momentum")
    a = make_order(user=trader, account=account, instrument=instrument, strategy=momentum)
    b = make_order(user=trader, account=other_account, instrument=future, status="FILLED")
    c = make_order(user=trader, account=account, instrument=future, status="REJECTED")
    Order.objects.filter(pk=a.pk).update(created_at=timezone.now() - timedelta(days=3))

    def ids(query):
        response = client.get(f"/api/orders?{query}")
        assert response.status_code == 200, response.json()
        return {o["id"] for o in response.json()["orders"]}

    assert ids(f"account_id={account.pk}") == {a.pk, c.pk}
    assert ids("status=FILLED") == {b.pk}
    assert ids("status=FILLED,REJECTED") == {b.pk, c.pk}
    assert ids("symbol=NIFTYFUT") == {b.pk, c.pk}
    assert ids("strategy=momentum") == {a.pk}
    assert ids("strategy=unknown") == set()
    since = (timezone.now() - timedelta(days=1)).date().isoformat()
    assert ids(f"since={since}") == {b.pk, c.pk}
    assert ids(f"until={since}") == {a.pk}


def test_until_a_date_includes_that_whole_day_in_the_list_and_its_export(
    client, trader, account, instrument
):
    # The documented reading: "until" is exclusive, but a bare date includes that whole day.
    # A date-only value once parsed as that day's midnight: "until=today" dropped all of today.
    placed_now = make_order(user=trader, account=account, instrument=instrument)
    today = timezone.localdate()
    listed = client.get(f"/api/orders?until={today.isoformat()}").json()["orders"]
    assert [o["id"] for o in listed] == [placed_now.pk]
    exported = b"".join(client.get(f"/api/orders/export?until={today}").streaming_content)
    assert exported.decode().splitlines()[1].startswith(f"{placed_now.pk},")
    yesterday = (today - timedelta(days=1)).isoformat()
    assert client.get(f"/api/orders?until={yesterday}").json()["orders"] == []
    # A date-time stays exact (exclusive).
    moment = placed_now.created_at.isoformat()
    assert client.get("/api/orders", {"until": moment}).json()["orders"] == []


def test_the_list_paginates_with_limit_and_offset(client, trader, account, instrument):
    orders = [make_order(user=trader, account=account, instrument=instrument) for _ in range(5)]
    body = client.get("/api/orders?limit=2&offset=2").json()
    assert body["total"] == 5 and (body["limit"], body["offset"]) == (2, 2)
    assert [o["id"] for o in body["orders"]] == [orders[2].pk, orders[1].pk]


def test_the_total_counts_the_whole_filtered_list_even_past_its_last_page(
    client, trader, account, instrument
):
    """The page and the count are read in one statement (selectors.order_list_page): the
    total is the filtered list's, not the page's, and a page past the end still has it. An
    order with no leg is listed with no leg statuses; one with three legs shows each."""
    bare = make_order(user=trader, account=account, instrument=instrument, entry_leg=False)
    bracket = make_order(user=trader, account=account, instrument=instrument, kind="BRACKET")
    make_leg(order=bracket, broker_order_id="SL-9", role="STOP_LOSS", side="SELL", status="OPEN")
    make_leg(order=bracket, broker_order_id=None, role="TAKE_PROFIT", side="SELL", status="PENDING")
    make_order(user=trader, account=account, instrument=instrument)
    for _ in range(2):
        make_order(user=trader, account=account, instrument=instrument, status="FILLED")

    body = client.get("/api/orders?status=OPEN&limit=2").json()
    assert body["total"] == 3 and len(body["orders"]) == 2
    rows = {row["id"]: row for row in client.get("/api/orders").json()["orders"]}
    assert len(rows) == 5
    assert (rows[bare.pk]["entry_order_status"], rows[bare.pk]["sl_order_status"]) == (None, None)
    assert (
        rows[bracket.pk]["entry_order_status"],
        rows[bracket.pk]["sl_order_status"],
        rows[bracket.pk]["tp_order_status"],
    ) == ("OPEN", "OPEN", "PENDING")
    for query in ("status=OPEN&limit=2&offset=3", "status=OPEN&offset=9223372036854775807"):
        body = client.get(f"/api/orders?{query}").json()
        assert (body["total"], body["orders"]) == (3, []), query
    body = client.get("/api/orders?status=CANCELLED").json()
    assert (body["total"], body["orders"]) == (0, [])


@pytest.mark.parametrize(
    "query", ["status=NOPE", "account_id=abc", "since=yesterday", "limit=0", "offset=-1"]
)
def test_bad_list_parameters_are_400(client, account, query):
    response = client.get(f"/api/orders?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_the_list_costs_the_same_queries_for_one_order_or_fifty(
    client, trader, account, instrument, django_assert_max_num_queries
):
    for _ in range(50):
        make_order(user=trader, account=account, instrument=instrument)
    # auth + count + page + legs (+ session bookkeeping): never one query per row.
    with django_assert_max_num_queries(8):
        assert len(client.get("/api/orders").json()["orders"]) == 50


# ---- detail, modify, cancel ------------------------------------------------------------------------


def test_the_detail_has_legs_and_events(client, trader, account, instrument):
    order = place_single_order(user=trader, request=single_request(account)).order
    body = client.get(f"/api/orders/{order.pk}").json()
    assert [leg["role"] for leg in body["legs"]] == ["ENTRY"]
    assert [e["kind"] for e in body["events"]] == ["order_created", "leg_accepted"]


def test_patch_moves_the_limit_price_at_the_broker(client, trader, account, instrument):
    order = place_single_order(user=trader, request=single_request(account)).order
    response = client.patch(
        f"/api/orders/{order.pk}", {"limit_price": "98.50", "quantity": 20}, format="json"
    )
    assert response.status_code == 200, response.json()
    (leg,) = legs_of(order)
    assert (leg.limit_price, leg.quantity) == (D("98.50"), 20)
    paper = PaperOrder.objects.get(unique_identifier=leg.unique_identifier)
    assert (paper.limit_price, paper.quantity) == (D("98.50"), 20)
    assert order.events.filter(kind="leg_modified").count() == 1


def test_patch_validates_like_placement(client, trader, account, instrument):
    order = place_single_order(user=trader, request=single_request(account)).order
    response = client.patch(f"/api/orders/{order.pk}", {"limit_price": "98.51"}, format="json")
    assert response.status_code == 400
    assert "limit_price" in response.json()["details"]
    assert legs_of(order)[0].limit_price == D("99.00")


def test_a_bracket_entry_cannot_move_past_its_stop_loss(client, trader, account, instrument):
    order = place_bracket_order(user=trader, request=bracket_request(account)).order
    response = client.patch(f"/api/orders/{order.pk}", {"limit_price": "95.00"}, format="json")
    assert response.status_code == 400


def test_cancel_cancels_the_working_entry(client, trader, account, instrument):
    order = place_single_order(user=trader, request=single_request(account)).order
    response = client.post(f"/api/orders/{order.pk}/cancel")
    assert response.status_code == 200
    assert response.json()["order_status"] == "CANCELLED"
    (leg,) = legs_of(order)
    assert PaperOrder.objects.get(unique_identifier=leg.unique_identifier).status == "CANCELLED"


def test_cancelling_a_finished_order_is_409(client, trader, account, instrument):
    order = place_single_order(user=trader, request=single_request(account)).order
    client.post(f"/api/orders/{order.pk}/cancel")
    response = client.post(f"/api/orders/{order.pk}/cancel")
    assert response.status_code == 409


# ---- kill switch -----------------------------------------------------------------------------------


def test_the_kill_switch_needs_an_explicit_confirmation(client, account):
    response = client.post(f"/api/accounts/{account.pk}/kill-switch", {}, format="json")
    assert response.status_code == 400
    assert "confirm" in response.json()["details"]


def test_the_kill_switch_cancels_everything_and_squares_off(client, trader, account, instrument):
    bracket = place_bracket_order(user=trader, request=bracket_request(account)).order
    working = place_single_order(
        user=trader, request=single_request(account, limit_price=D("90.00"))
    ).order
    make_fair_price(instrument, "98.90")
    sync_from_broker(account)
    make_fair_price(instrument, "100.00")
    place_protective_legs(account=account)

    response = client.post(
        f"/api/accounts/{account.pk}/kill-switch", {"confirm": "KILL"}, format="json"
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["complete"] is True, body
    assert len(body["cancelled_legs"]) == 4  # the working single, SL and two targets
    (exit_leg,) = legs_of(bracket, "EXIT")
    assert (exit_leg.side, exit_leg.order_type, exit_leg.quantity) == ("SELL", "MARKET", 100)
    # The paper exchange filled the market exit at once and said so in its answer: known
    # now, without waiting for a sync, and the bracket is closed already.
    assert (exit_leg.status, exit_leg.filled_quantity) == ("FILLED", 100)
    assert OrderLeg.objects.filter(account=account, status="OPEN").count() == 0
    bracket.refresh_from_db()
    assert bracket.status == Order.Status.COMPLETED
    assert legs_of(working)[0].status == "CANCELLED"
    sync_from_broker(account)
    place_protective_legs(account=account)  # nothing is put back
    bracket.refresh_from_db()
    assert bracket.status == Order.Status.COMPLETED
    assert OrderLeg.objects.filter(account=account, status="OPEN").count() == 0
    assert bracket.events.filter(kind="kill_switch").exists()


# ---- isolation ---------------------------------------------------------------------------------------


@pytest.fixture
def strangers_order(instrument):
    stranger = make_user()
    stranger_account = make_account(user=stranger)
    order = place_single_order(user=stranger, request=single_request(stranger_account)).order
    return order


def test_another_users_order_is_404_on_every_endpoint(client, strangers_order):
    pk = strangers_order.pk
    assert client.get(f"/api/orders/{pk}").status_code == 404
    assert (
        client.patch(f"/api/orders/{pk}", {"limit_price": "98"}, format="json").status_code == 404
    )
    assert client.post(f"/api/orders/{pk}/cancel").status_code == 404
    assert client.get("/api/orders").json()["total"] == 0
    for listing in ("/api/orders", "/api/orders/export"):
        response = client.get(f"{listing}?account_id={strangers_order.account_id}")
        assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")
    kill = client.post(
        f"/api/accounts/{strangers_order.account_id}/kill-switch",
        {"confirm": "KILL"},
        format="json",
    )
    assert kill.status_code == 404
    assert legs_of(strangers_order)[0].status == "OPEN"
    algo = client.post(
        "/api/algo-orders",
        {
            "account_id": strangers_order.account_id,
            "trading_symbol": "RELIANCE",
            "no_of_lots": 1,
            "entry_price": "99",
            "sl_price": "95",
        },
        format="json",
    )
    assert algo.status_code == 404


def test_a_deactivated_account_still_lists_its_orders(client, trader, account, instrument):
    order = place_single_order(user=trader, request=single_request(account)).order
    account.is_active = False
    account.save(update_fields=["is_active"])
    body = client.get(f"/api/orders?account_id={account.pk}").json()
    assert [row["id"] for row in body["orders"]] == [order.pk]


def test_anonymous_callers_get_401(instrument):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/orders").status_code == 401
    assert APIClient().post("/api/orders", {}, format="json").status_code == 401


def test_a_stranger_cannot_read_my_orders(trader, account, instrument):
    order = place_single_order(user=trader, request=single_request(account)).order
    stranger = api_client_for(make_user())
    assert stranger.get(f"/api/orders/{order.pk}").status_code == 404
