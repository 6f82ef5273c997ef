"""The account row first (orders.services.account_lock), against real MariaDB row locks.

Each race runs two real transactions of one account in two threads (each with its own
connection), held at the statement where the old lock order let them cross: the PnL holds
the account row and is about to write what the other holds, while the other is about to
reach the account row. With the account row first in both, the second waits at its first
statement instead, and both complete. The writers are called beside each other without the
account's exclusion (a holder whose lease lapsed, a share-mode writer): the database's lock
order alone must keep them apart. A run that does lose a lock conflict is rolled back whole
and says Busy, which the broker event dispatcher tries again: the event is not lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal as D

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, transaction

from accounts.models import BrokerAccount
from monitoring.events import finish_broker_events
from orders.brokers.sessions import broker_client
from orders.models import BrokerTrade, Order, OrderLeg
from orders.services import (
    place_protective_legs,
    place_single_order,
    store_broker_snapshots,
    sync_account_orders,
)
from orders.services.account_lock import RowsBusy, lock_account_row
from orders.services.events import apply_broker_events
from orders.services.sync import stored_order_book
from pnl.models import PnlLot
from pnl.services import compute_account_pnl
from tests.concurrency import start_thread
from tests.factories import (
    broker_event,
    legs_of,
    make_desk,
    make_fair_price,
    paper_order_row,
    place_bracket_near_1000,
    set_price_and_match,
    single_request,
    sync_positions,
)

pytestmark = pytest.mark.django_db(transaction=True)

# How long the PnL holds the account row waiting for the other to reach its crossing point;
# with the account row first the other never does (it waits for the PnL), so this passes.
CROSSING_WAIT = 3.0


def _hold_before(prefix: str, until: threading.Event):
    """An execute wrapper: a statement starting with `prefix` waits (at most CROSSING_WAIT)
    for `until` before it is sent."""

    def wrapper(execute, sql, params, many, context):
        if sql.startswith(prefix):
            until.wait(CROSSING_WAIT)
        return execute(sql, params, many, context)

    return wrapper


def _tell(is_it: Callable[[str], bool], event: threading.Event, *, after: bool):
    """An execute wrapper: sets `event` before (or once answered, after) a statement that
    `is_it`."""

    def wrapper(execute, sql, params, many, context):
        if is_it(sql) and not after:
            event.set()
        result = execute(sql, params, many, context)
        if is_it(sql) and after:
            event.set()
        return result

    return wrapper


def _locks_the_account(sql: str) -> bool:
    return "`broker_accounts`" in sql and ("FOR UPDATE" in sql or "SHARE MODE" in sql)


def _race(pnl_wrappers, other_work, other_wrappers, account) -> list[BaseException]:
    """The PnL of `account` first (it holds the account row), then `other_work` once it
    does; both to the end. Returns what either raised."""
    errors: list[BaseException] = []
    pnl = start_thread(errors, lambda: compute_account_pnl(account=account), *pnl_wrappers)
    other = start_thread(errors, other_work, *other_wrappers)
    for thread in (pnl, other):
        thread.join(60)
        assert not thread.is_alive()
    return errors


def _bracket_with_its_entry_matched(symbol: str):
    """A desk's bracket near 1,000 whose entry the paper exchange filled at 994; our books
    do not show the fill until a sync or a broker event."""
    user, account, instrument = make_desk(symbol=symbol)
    order = place_bracket_near_1000(account=account, instrument=instrument)
    set_price_and_match(instrument, "994")
    return user, account, instrument, order


def test_a_sync_beside_a_pnl_run_waits_for_the_account_row_and_both_complete():
    # A filled bracket whose PnL is stored; the price moves: the sync writes the order's
    # shown prices (and then the account's digests), the PnL the order's figures (holding
    # the account row). The old sync took the account row after the orders: 1213.
    _user, account, instrument, order = _bracket_with_its_entry_matched("SBIN")
    sync_positions(account)  # the books stored, the entry FILLED
    compute_account_pnl(account=account)
    make_fair_price(instrument, "1003")
    book = stored_order_book(account)
    pnl_holds_account, sync_wants_account = threading.Event(), threading.Event()

    def sync():
        pnl_holds_account.wait(10)
        sync_account_orders(account=account, order_book=book, book_digest="after-the-move")

    errors = _race(
        [
            _tell(_locks_the_account, pnl_holds_account, after=True),
            _hold_before("UPDATE `orders`", until=sync_wants_account),
        ],
        sync,
        [
            _tell(
                lambda sql: sql.startswith("UPDATE `broker_accounts`"),
                sync_wants_account,
                after=False,
            )
        ],
        account,
    )

    assert errors == []
    order.refresh_from_db()
    assert (order.avg_fair_price, order.ltp) == (D("1003"), D("1003"))
    bought_at = PnlLot.objects.get(account=account).entry_price
    assert (order.pnl, order.open_position) == ((D("1003") - bought_at) * 10, 10)
    account = BrokerAccount.objects.get(pk=account.pk)
    assert account.synced_book_digest == "after-the-move"
    assert account.total_mtm == order.pnl


def test_a_broker_event_beside_a_pnl_run_waits_for_the_account_row_and_both_complete():
    # The cycle's step 1 stored the fill (order book and trade), our legs do not show it
    # yet; then the PnL re-matches (its new lot names the entry leg: a share lock on it)
    # while the fill's order event applies (the entry leg locked, then its audit row: the
    # account row in share mode). The old apply run took the account row last: 1213.
    _user, account, _instrument, order = _bracket_with_its_entry_matched("TCS")
    [entry] = legs_of(order, OrderLeg.Role.ENTRY)
    client = broker_client(account)
    store_broker_snapshots(
        account=account,
        order_book=async_to_sync(client.order_book)(),
        trades=async_to_sync(client.trade_book)(),
        positions=None,
        balance=None,
    )
    events = [broker_event(account, order=paper_order_row(account, entry))]
    pnl_holds_account, event_holds_legs = threading.Event(), threading.Event()

    def apply():
        pnl_holds_account.wait(10)
        apply_broker_events(account=account, events=events)

    errors = _race(
        [
            _tell(_locks_the_account, pnl_holds_account, after=True),
            _hold_before("INSERT INTO `pnl_lots`", until=event_holds_legs),
        ],
        apply,
        [
            _tell(
                lambda sql: (
                    sql.startswith("SELECT") and "`order_legs`" in sql and "FOR UPDATE" in sql
                ),
                event_holds_legs,
                after=True,
            )
        ],
        account,
    )

    assert errors == []
    entry.refresh_from_db()
    order.refresh_from_db()
    assert (entry.status, entry.filled_quantity) == ("FILLED", 10)
    assert (order.status, order.open_position) == (Order.Status.FILLED, 10)
    assert PnlLot.objects.get(account=account).entry_leg_id == entry.pk


def test_a_placement_beside_protection_takes_the_account_row_in_share_mode_and_both_complete():
    # A trader places an order while a fill's protection writes its exits: the write-ahead
    # locks the account row (the trading-lock check), then takes the day's counter;
    # protection holds its order and the counter, then reaches the account row through its
    # new legs' foreign key. The write-ahead's FOR UPDATE made that a 1213; in share mode
    # the two share the account row.
    user, account, instrument, order = _bracket_with_its_entry_matched("HDFC")
    sync_positions(account)  # the entry FILLED, no exit yet
    placement_holds_account, protection_took_numbers = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    placed: list[Order] = []

    def place():
        request = single_request(account, symbol=instrument.trading_symbol, limit_price=D("990"))
        placed.append(place_single_order(user=user, request=request).order)

    def protect():
        placement_holds_account.wait(10)
        place_protective_legs(account=account)

    placement = start_thread(
        errors,
        place,
        _tell(_locks_the_account, placement_holds_account, after=True),
        _hold_before("UPDATE `daily_counters`", until=protection_took_numbers),
    )
    protection = start_thread(
        errors,
        protect,
        _tell(
            lambda sql: sql.startswith("UPDATE `daily_counters`"),
            protection_took_numbers,
            after=True,
        ),
    )
    for thread in (placement, protection):
        thread.join(60)
        assert not thread.is_alive()

    assert errors == []
    [new] = placed
    assert new.status == Order.Status.OPEN
    assert len(legs_of(order, OrderLeg.Role.STOP_LOSS)) == 1
    assert len(legs_of(order, OrderLeg.Role.TAKE_PROFIT)) == 1


@contextmanager
def _account_row_held_elsewhere(account) -> Iterator[None]:
    """Another transaction holds the account row FOR UPDATE for the block, while this
    connection gives up a row lock after 1 s (MariaDB's 1205, not after 50 s)."""
    held, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            lock_account_row(account.pk, exclusive=True)
            held.set()
            release.wait(30)

    errors: list[BaseException] = []
    holder = start_thread(errors, hold)
    try:
        assert held.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
        yield
    finally:
        release.set()
        holder.join(30)
        connection.close()  # the short lock waits end with this connection
    assert errors == []


def test_an_apply_run_that_loses_a_lock_conflict_stores_nothing_says_busy_and_applies_again():
    _user, account, _instrument, order = _bracket_with_its_entry_matched("INFY")
    [entry] = legs_of(order, OrderLeg.Role.ENTRY)
    client = broker_client(account)
    events = [broker_event(account, order=paper_order_row(account, entry))]
    events += [broker_event(account, trade=row) for row in async_to_sync(client.trade_book)()]
    with _account_row_held_elsewhere(account), pytest.raises(RowsBusy):
        apply_broker_events(account=account, events=events)

    assert not BrokerTrade.objects.filter(account=account).exists()  # rolled back whole
    effect = apply_broker_events(account=account, events=events)  # the dispatcher's retry
    assert effect.new_trades == 1
    entry.refresh_from_db()
    assert (entry.status, entry.filled_quantity) == ("FILLED", 10)


def test_a_pnl_after_broker_events_that_loses_a_lock_conflict_is_left_for_a_retry():
    # Before: logged as "PnL failed" and dropped till the next cycle; now Busy, which the
    # dispatcher's finish tries again after a pause.
    _user, account, _instrument, _order = _bracket_with_its_entry_matched("WIPRO")
    sync_positions(account)
    with _account_row_held_elsewhere(account), pytest.raises(RowsBusy):
        finish_broker_events(account.pk, frozenset({"pnl"}))

    assert not PnlLot.objects.filter(account=account).exists()
    finish_broker_events(account.pk, frozenset({"pnl"}))
    assert PnlLot.objects.filter(account=account).count() == 1
