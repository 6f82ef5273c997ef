"""bench/orders_list.py fills the orders table with raw multi-row INSERTs: they must name
every column the table requires (a NOT NULL column added to Order without one broke the fill
of every later run), and the rows they write must read back through the list."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from bench.common import seed_traders
from bench.orders_list import add_legs_for_page, fill
from orders.models import Order

pytestmark = pytest.mark.django_db


def test_the_fill_writes_orders_and_legs_the_list_reads():
    traders, instrument = seed_traders(2, prefix="fill")
    fill(target_rows=120, traders=traders, instrument=instrument, chunk=50)
    assert Order.objects.count() == 120
    first = traders[0]
    add_legs_for_page(first.user_id, first.account_id, pages=1)

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {first.token}")
    answer = client.get("/api/orders", {"limit": 50})
    assert answer.status_code == 200, answer.content
    page = answer.json()
    mine = Order.objects.filter(user_id=first.user_id).count()
    assert page["total"] == mine > 0
    rows = page["orders"]
    assert len(rows) == min(mine, 50)
    assert {row["entry_order_status"] for row in rows} == {"OPEN"}
    assert all(row["broker_order_id"] == f"B{row['id']}" for row in rows)
