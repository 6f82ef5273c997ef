"""`order_counts` (orders.models.UserOrderCount): each user's number of orders, kept by the
database's own triggers (orders.order_count_triggers), whatever writes the orders. The
order list's unfiltered total reads it."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.db import connection, transaction
from django.db.models import Count

from orders.models import Order, UserOrderCount
from orders.services import place_single_order
from tests.concurrency import in_threads
from tests.factories import (
    api_client_for,
    batch_item,
    make_account,
    make_order,
    make_reliance_at_100,
    make_user,
    order_instrument_fields,
    single_order_body,
    single_request,
)


def counts() -> dict[int, int]:
    """The kept counts of every user with a row (0 included)."""
    return dict(UserOrderCount.objects.values_list("user_id", "total"))


def counted() -> dict[int, int]:
    """The orders of every user, counted."""
    rows = Order.objects.values("user_id").annotate(n=Count("id")).order_by()
    return {row["user_id"]: row["n"] for row in rows}


def test_the_count_follows_placement_batches_bare_rows_deletes_and_moves(
    trader, account, instrument, client
):
    other = make_user()
    second_account = make_account(user=trader)
    assert client.post("/api/orders", single_order_body(account), format="json").status_code == 201
    body = single_order_body(second_account, order_quantity=3)
    assert client.post("/api/orders", body, format="json").status_code == 201
    batch = {"account_id": account.pk, "orders": [batch_item(n) for n in range(4)]}
    assert client.post("/api/algo-place-batch-orders", batch, format="json").status_code == 201
    bare = Order.objects.bulk_create(
        Order(
            user=trader,
            account=account,
            **order_instrument_fields(instrument),
            side="BUY",
            quantity=1,
            order_type="LIMIT",
            limit_price=D("99"),
        )
        for _ in range(3)
    )
    make_order(user=other, account=make_account(user=other), instrument=instrument)
    assert counts() == counted() == {trader.pk: 9, other.pk: 1}

    Order.objects.filter(pk=bare[0].pk).delete()
    Order.objects.filter(pk=bare[1].pk).update(user=other)
    Order.objects.filter(pk=bare[2].pk).update(quantity=5)  # not a move: nothing changes
    assert counts() == counted() == {trader.pk: 7, other.pk: 2}

    # A placement that rolls back takes its +1 with it.
    with pytest.raises(RuntimeError), transaction.atomic():
        make_order(user=other, account=make_account(user=other), instrument=instrument)
        raise RuntimeError("rolled back")
    assert counts() == counted() == {trader.pk: 7, other.pk: 2}


def test_the_unfiltered_lists_total_is_the_kept_count_and_a_filtered_one_is_counted(
    trader, account, instrument, client
):
    for status in ("OPEN", "OPEN", "FILLED"):
        make_order(user=trader, account=account, instrument=instrument, status=status)
    assert client.get("/api/orders").json()["total"] == 3
    # Read from the kept row: a wrong row would show (no code writes it; this test does).
    UserOrderCount.objects.filter(user_id=trader.pk).update(total=41)
    assert client.get("/api/orders?limit=1").json()["total"] == 41
    assert client.get("/api/orders?status=OPEN").json()["total"] == 2
    assert client.get(f"/api/orders?account_id={account.pk}").json()["total"] == 3
    # A user with no order has no row yet: 0.
    assert api_client_for(make_user()).get("/api/orders").json()["total"] == 0


@pytest.mark.skipif(connection.vendor != "mysql", reason="row locks of MariaDB")
def test_one_users_placements_on_two_accounts_at_once_count_exactly(transactional_db):
    """Each order's insert holds its user's count row to the end of its write-ahead
    transaction: eight threads placing for one user on two accounts queue on it, none
    deadlocks, and the count is exact."""
    trader = make_user()
    accounts = [make_account(user=trader), make_account(user=trader)]
    make_reliance_at_100()

    def place(n: int) -> None:
        for _ in range(3):
            place_single_order(user=trader, request=single_request(accounts[n % 2]))

    results = in_threads(8, place, timeout=120)

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert counts() == counted() == {trader.pk: 24}
