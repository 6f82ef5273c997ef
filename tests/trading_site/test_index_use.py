"""The instrument master is large from the first day (a real broker's lists some 100,000
contracts), so every read of it on a hot path must go through an index. The demo's few
hundred instruments hid reads by `exchange_instrument_id` alone, which the unique key
(segment, id) cannot serve: with a real master each one scanned the whole table, and the
broker events bench's protection p95 went from 0.45 s to 7.2 s.

Each test runs a hot path against a master of a few thousand rows (enough for MariaDB's
optimizer to prefer an index when there is one) and asks MariaDB how it executed every
statement that read `instruments`."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.brokers.paper.book import book_for_account, compute_balance
from orders.brokers.paper.models import PaperOrder
from orders.models import Instrument, Order, OrderLeg
from orders.services.kill_switch import kill_switch
from tests.factories import (
    api_client_for,
    batch_item,
    book_row_instrument_fields,
    buy_at_market,
    make_account,
    make_desk,
    make_instrument,
    order_instrument_fields,
    sync_positions,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "mysql", reason="MariaDB's query plans"),
]

MASTER_SIZE = 3000


@pytest.fixture
def big_master():
    Instrument.objects.bulk_create(
        Instrument(
            exchange_segment="NSEFO",
            exchange_instrument_id=7_000_000 + n,
            instrument_type="OPTIDX",
            trading_symbol=f"NIFTY{n}CE",
            lot_size=50,
        )
        for n in range(MASTER_SIZE)
    )


def make_orders(account, instrument, count: int) -> None:
    """`count` orders of the account's owner, one a minute, as bare rows, each with an entry
    leg (so that the optimizer meets a legs table of a real desk's shape)."""
    start = timezone.now() - timedelta(minutes=count)
    orders = Order.objects.bulk_create(
        Order(
            user_id=account.user_id,
            account=account,
            **order_instrument_fields(instrument),
            side="BUY",
            quantity=1,
            order_type="LIMIT",
            limit_price=Decimal("99"),
            status=Order.Status.OPEN,
            created_at=start + timedelta(minutes=n),
        )
        for n in range(count)
    )
    OrderLeg.objects.bulk_create(
        OrderLeg(
            order=order,
            account=account,
            role=OrderLeg.Role.ENTRY,
            order_type="LIMIT",
            side="BUY",
            quantity=1,
            limit_price=Decimal("99"),
            unique_identifier=f"IX{account.pk}-{n}",
        )
        for n, order in enumerate(orders)
    )


def reads_of_instruments(queries: list[dict]) -> list[str]:
    """The captured SELECTs that read `instruments`."""
    return [
        q["sql"] for q in queries if q["sql"].startswith("SELECT") and "`instruments`" in q["sql"]
    ]


def full_scans_of_instruments(queries: list[dict]) -> list[str]:
    """The captured SELECTs that MariaDB would answer by reading every row of
    `instruments` (plan type ALL)."""
    scans = []
    with connection.cursor() as cursor:
        for sql in reads_of_instruments(queries):
            cursor.execute("EXPLAIN " + sql)
            names = [column[0] for column in cursor.description]
            for row in cursor.fetchall():
                plan = dict(zip(names, row, strict=True))
                if plan["table"] == "instruments" and plan["type"] == "ALL":
                    scans.append(sql)
    return scans


def test_a_paper_books_positions_read_the_master_by_index(big_master, settings):
    settings.PAPER_REJECT_RATE = "0"
    user, account, instrument = make_desk()
    buy_at_market(account, instrument, 10)
    with CaptureQueriesContext(connection) as ctx:
        sync_positions(account)  # the positions' marks, as every cycle and the events read them
    assert reads_of_instruments(ctx.captured_queries)
    assert full_scans_of_instruments(ctx.captured_queries) == []


def test_a_batch_reads_the_master_by_index(big_master, settings):
    settings.PAPER_REJECT_RATE = "0"
    user, account, instrument = make_desk()
    items = [
        batch_item(
            n,
            trading_symbol=instrument.trading_symbol,
            entry_price="995",
            sl_price="979",
            targets=[{"price": "1010", "percent": "100"}],
        )
        for n in range(3)
    ]
    client = api_client_for(user)
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(
            "/api/algo-place-batch-orders",
            {"account_id": account.pk, "orders": items},
            format="json",
        )
    assert response.status_code == 201, response.json()
    assert {r["status"] for r in response.json()["results"]} == {"success"}
    assert reads_of_instruments(ctx.captured_queries)
    assert full_scans_of_instruments(ctx.captured_queries) == []


def test_the_kill_switch_reads_the_master_by_index(big_master, settings):
    settings.PAPER_REJECT_RATE = "0"
    user, account, instrument = make_desk()
    buy_at_market(account, instrument, 10)
    sync_positions(account)
    with CaptureQueriesContext(connection) as ctx:
        result = kill_switch(account=account, actor="test")
    assert result.errors == []
    assert reads_of_instruments(ctx.captured_queries)
    assert full_scans_of_instruments(ctx.captured_queries) == []


def _page_read_plan(client, query: str) -> tuple[list[int], str, dict[str, dict]]:
    """GET /api/orders?<query>: the listed ids, the one statement that read the page
    (orders.selectors.order_list_page) and MariaDB's plan of its parts: the derived tables
    of the count ("counted") and of the page's ids ("page"), then the joined rows of the
    orders ("o") and their legs ("l")."""
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(f"/api/orders?{query}")
    assert response.status_code == 200
    [page_read] = [q["sql"] for q in ctx.captured_queries if "`orders`" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + page_read)
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    derived = {row["id"]: row for row in rows if row["select_type"] == "DERIVED"}
    # The outer rows in join order: the count's derived table, the page's, then o, s, l (a
    # LEFT JOIN keeps that order).
    outer = [row for row in rows if row["select_type"] == "PRIMARY"]
    counted, page = (derived[int(row["table"][len("<derived") : -1])] for row in outer[:2])
    plan = {"counted": counted, "page": page, **{row["table"]: row for row in outer[2:]}}
    # The user's order count (an unfiltered list) is a subquery of the counted table.
    plan.update({row["table"]: row for row in rows if row["select_type"] == "SUBQUERY"})
    return [order["id"] for order in response.json()["orders"]], page_read, plan


def test_the_order_lists_page_is_read_off_the_users_index_alone():
    """The list's ordered, limited read takes only ids, answered from the (user, created_at,
    id) index without touching a row ("Using index") and without a sort: with whole rows
    MariaDB may walk the created_at index over every user's orders instead (35 ms a page on
    5,000,000 orders). The same for a page filtered by status or symbol, from their indexes."""
    user, account, instrument = make_desk()
    other = make_desk()[1]
    make_orders(account, instrument, 300)
    make_orders(other, instrument, 2000)
    client = api_client_for(user)
    client.get("/api/orders")  # the session's first-request bookkeeping
    newest_first = Order.objects.filter(user=user).order_by("-created_at", "-id")
    for query, index in [
        ("limit=50&offset=10", "order_user_recent"),
        ("limit=50&status=OPEN", "order_user_status"),
        (f"limit=50&symbol={instrument.trading_symbol}", "order_user_symbol"),
    ]:
        listed, page_read, plan = _page_read_plan(client, query)
        offset = 10 if "offset" in query else 0
        assert listed == list(newest_first.values_list("id", flat=True)[offset : offset + 50])
        page = plan["page"]
        assert page["table"] == "orders" and page["key"] == index, (query, plan)
        assert "Using index" in (page["Extra"] or ""), (query, plan)
        assert "filesort" not in (page["Extra"] or ""), (query, plan)
        # The count: an unfiltered list's is the user's row of order_counts, by primary key;
        # a filtered one's from an index alone. The rows and legs by key, never scanned.
        if "offset" in query:
            assert plan["order_counts"]["type"] == "const", (query, plan)
        else:
            assert plan["counted"]["table"] == "orders", (query, plan)
            assert "Using index" in plan["counted"]["Extra"], (query, plan)
        assert plan["o"]["type"] == "eq_ref" and plan["o"]["key"] == "PRIMARY", (query, plan)
        assert plan["l"]["type"] == "ref", (query, plan)


def test_a_paper_books_open_order_exposure_is_read_off_its_index_alone():
    """Summed on every paper placement: the book's open orders from the covering index
    paper_book_open_exposure without touching a row, each one's contract multiplier from
    its instrument by primary key (a desk holds many books and each many orders)."""
    books = [book_for_account(make_account().pk) for _ in range(20)]
    instruments = [make_instrument(symbol=f"EXPOSE{n}") for n in range(5)]
    PaperOrder.objects.bulk_create(
        PaperOrder(
            book=book,
            instrument=instruments[n % 5],
            **book_row_instrument_fields(instruments[n % 5]),
            side="BUY",
            order_type="LIMIT",
            product_type="MIS",
            quantity=1,
            limit_price=Decimal("90"),
            status="OPEN" if n % 3 else "FILLED",
        )
        for book in books
        for n in range(200)
    )
    with CaptureQueriesContext(connection) as ctx:
        compute_balance(books[3])
    [exposure] = [q["sql"] for q in ctx.captured_queries if "paper_orders" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + exposure)
        names = [column[0] for column in cursor.description]
        plan = {row[2]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    assert plan["o"]["key"] == "paper_book_open_exposure", plan
    # "Using index", not "Using index condition" (that one reads the rows)
    assert "Using index" in (plan["o"]["Extra"] or "").split("; "), plan
    assert (plan["i"]["type"], plan["i"]["key"]) == ("eq_ref", "PRIMARY"), plan
