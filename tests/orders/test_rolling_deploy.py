"""Between `migrate` and their restart, web processes of the previous release keep writing
orders with the columns they know: a column added since must have a database default, or
each of their placements fails."""

from __future__ import annotations

import pytest
from django.db import connection

from orders.models import Order
from tests.factories import make_account, make_order

pytestmark = pytest.mark.django_db


def test_an_order_written_without_broker_shortfall_reads_zero():
    order = make_order(account=make_account())
    # Every column the previous release knew (all but the id and broker_shortfall), copied
    # from a row this release wrote: the INSERT such a process sends.
    known = [
        f.column for f in Order._meta.concrete_fields if f.column not in ("id", "broker_shortfall")
    ]
    columns = ", ".join(known)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO orders ({columns}) SELECT {columns} FROM orders WHERE id = %s",
            [order.pk],
        )
        copied = cursor.lastrowid
    assert Order.objects.get(pk=copied).broker_shortfall == 0
