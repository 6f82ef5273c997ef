"""A broker event whose apply run keeps losing its lock conflict (real MariaDB row locks,
the real dispatcher and handlers): RowsBusy is retried a bounded number of times, then the
run is dropped (counted as busy-dropped, logged as left to the next cycle), never looped on
forever; nothing of it was written meanwhile; the account's later events are applied once
the rows are free, which applies the fill (had none come, the next cycle's sync would, from
the broker's book: the 60-second loop, as orders.brokers.streams.dispatch documents).
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from django.db import connection, transaction
from django.db.backends.signals import connection_created

from orders.brokers.streams.dispatch import Dispatcher, resolve_handlers
from orders.models import BrokerOrder, BrokerTrade, Order, OrderLeg
from orders.services.account_lock import lock_account_row
from tests.factories import (
    broker_event,
    make_desk,
    paper_order_row,
    place_bracket_near_1000,
    set_price_and_match,
    sync_from_broker,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _short_lock_waits(sender, connection, **kwargs):
    """Every connection opened meanwhile (the dispatcher's pool threads') gives up a row lock
    after 1 s (MariaDB's 1205, which the apply run turns into RowsBusy)."""
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")


def _status_of(leg_id: int) -> str:
    try:
        return OrderLeg.objects.get(pk=leg_id).status
    finally:
        connection.close()


def _broker_orders(account_id: int) -> int:
    try:
        return BrokerOrder.objects.filter(account_id=account_id).count()
    finally:
        connection.close()


def test_an_apply_run_busy_past_its_retries_is_dropped_to_the_cycle_not_lost_nor_looped(
    settings,
):
    settings.BROKER_EVENT_BUSY_RETRIES = 1
    user, account, instrument = make_desk(symbol="ITC")
    order = place_bracket_near_1000(account=account, instrument=instrument)
    [entry] = order.legs.filter(role=OrderLeg.Role.ENTRY)
    set_price_and_match(instrument, "994")
    fill = broker_event(account, order=paper_order_row(account, entry))
    broker_orders_before = _broker_orders(account.pk)
    held, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold_the_account_row():  # a PnL run or a sync that does not let go
        try:
            with transaction.atomic():
                lock_account_row(account.pk, exclusive=True)
                held.set()
                release.wait(30)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    dropped: dict[str, object] = {}

    async def deliver():
        started = time.monotonic()
        await dispatcher.submit(fill)  # while the row is held: tried, retried, dropped
        entry_now = await asyncio.to_thread(_status_of, entry.pk)
        dropped.update(
            took=time.monotonic() - started,
            retried=dispatcher.busy_retried,
            counts=(dispatcher.failed, dispatcher.handled),
            entry=entry_now,
            broker_orders=await asyncio.to_thread(_broker_orders, account.pk),
        )
        release.set()
        await asyncio.to_thread(holder.join, 30)
        await dispatcher.submit(fill)  # the account's next event: applied, not starved

    connection_created.connect(_short_lock_waits)
    holder = threading.Thread(target=hold_the_account_row)
    holder.start()
    dispatcher = Dispatcher(resolve_handlers(), threads=2)
    dispatcher.busy_first_delay = 0.05
    try:
        assert held.wait(10)
        asyncio.run(asyncio.wait_for(deliver(), timeout=60))
    finally:
        release.set()
        holder.join(30)
        connection_created.disconnect(_short_lock_waits)
        dispatcher.close()
    assert errors == []

    # Tried twice (the first try and one retry), then dropped: bounded, not a loop; rolled
    # back whole meanwhile.
    assert dropped["retried"] == 1
    assert dropped["counts"] == (1, 0)
    assert dropped["took"] < 10
    assert dropped["entry"] != "FILLED"
    assert dropped["broker_orders"] == broker_orders_before
    # The next event of the account went through.
    assert (dispatcher.failed, dispatcher.handled) == (1, 1)
    entry.refresh_from_db()
    assert (entry.status, entry.filled_quantity) == ("FILLED", 10)
    sync_from_broker(account)  # the cycle finds it applied already: nothing doubled
    assert BrokerTrade.objects.filter(account=account).count() <= 1
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED
