"""The instrument master is large from the first day (a real broker's lists some 100,000
contracts), so every read of it on a hot path must go through an index. The demo's few
hundred instruments hid reads by `exchange_instrument_id` alone, which the unique key
(segment, id) cannot serve: with a real master each one scanned the whole table, and the
broker events bench's protection p95 went from 0.45 s to 7.2 s.

Each test runs a hot path against a master of a few thousand rows (enough for MariaDB's
optimizer to prefer an index when there is one) and asks MariaDB how it executed every
statement that read `instruments`."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.models import Instrument
from orders.services.kill_switch import kill_switch
from tests.factories import api_client_for, batch_item, buy_at_market, make_desk, sync_positions

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
