"""The kill switch during a burst of placements on the same account (real MariaDB, threads).

The write-ahead takes the account row in share mode (`trading_lock.refuse_if_locked`), so
share holders never wait for each other, and the kill switch's `lock_trading` (FOR UPDATE,
then UPDATE of that row) waits for every write-ahead holding it. The guarantee: once the
lock commits, no new order is written, so none can be sent. Each write-ahead pauses
a little after its read of the lock, so write-aheads are in flight on both sides of the
lock's commit; nothing may deadlock or time out.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal as D

import pytest
from django.db import OperationalError, connection, transaction

from orders.brokers.paper.models import PaperOrder
from orders.domain.vocabulary import EventKind
from orders.models import Order, OrderEvent
from orders.services import place_single_order
from orders.services.kill_switch import kill_switch
from tests.factories import make_desk, single_request
from trading_site.core.errors import TradingLocked

pytestmark = pytest.mark.django_db(transaction=True)

PLACERS = 6
ORDERS_EACH = 4


# The write-ahead's read of the lock (`trading_lock.refuse_if_locked`), in share mode.
_WRITE_AHEADS_READ = "SELECT `trading_locked_at` FROM `broker_accounts` WHERE `id` = %s"


def _slow_share_lock(execute, sql, params, many, context):
    result = execute(sql, params, many, context)
    if sql.startswith(_WRITE_AHEADS_READ):
        time.sleep(0.05)  # read "unlocked": the kill switch may try to commit meanwhile
    return result


def test_no_order_is_written_or_sent_after_the_kill_switchs_lock_commits_and_none_deadlocks():
    user, account, instrument = make_desk(symbol="RELIANCE")
    committed_ids: list[set[int]] = []
    errors: list[BaseException] = []
    refused: list[TradingLocked] = []
    placed: list[int] = []
    started = threading.Barrier(PLACERS + 1)

    def place():
        try:
            with connection.execute_wrapper(_slow_share_lock):
                started.wait(10)
                for _ in range(ORDERS_EACH):
                    request = single_request(
                        account, symbol=instrument.trading_symbol, limit_price=D("990")
                    )
                    try:
                        placed.append(place_single_order(user=user, request=request).order.pk)
                    except TradingLocked as exc:
                        refused.append(exc)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def note_the_lock_commit(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith("INSERT INTO `order_events`") and connection.in_atomic_block:
            # lock_trading's audit row, in its transaction: right after its commit, the
            # orders committed so far (every write-ahead holding the row finished first).
            transaction.on_commit(
                lambda: committed_ids.append(set(Order.objects.values_list("pk", flat=True)))
            )
        return result

    def kill():
        try:
            started.wait(10)
            time.sleep(0.15)  # a few placements in flight
            with connection.execute_wrapper(note_the_lock_commit):
                kill_switch(account=account, actor="user:test")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=place) for _ in range(PLACERS)]
    threads.append(threading.Thread(target=kill))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"

    assert errors == []  # no 1213 / 1205, no other failure
    assert not any(isinstance(exc, OperationalError) for exc in errors)
    assert OrderEvent.objects.filter(kind=EventKind.TRADING_LOCKED).count() >= 1
    [at_lock] = committed_ids[:1]
    written_after = set(Order.objects.values_list("pk", flat=True)) - at_lock
    assert written_after == set(), "orders written after the lock committed"
    assert refused, "no placement came after the lock (the race did not happen)"
    assert placed, "no placement came before the lock (the race did not happen)"
    # Every order written is accounted for: sent before the lock, or not sent at all.
    assert len(placed) + len(refused) == PLACERS * ORDERS_EACH
    sent = set(
        PaperOrder.objects.filter(book__account_id=account.pk).values_list(
            "unique_identifier", flat=True
        )
    )
    assert sent <= {
        uid
        for uid in Order.objects.filter(pk__in=at_lock)
        .values_list("legs__unique_identifier", flat=True)
        .distinct()
    }
