"""The user's `order_counts` row (orders.order_count_triggers) under concurrent work of one
user on two accounts (real MariaDB, threads, the interleaving forced).

The trigger locks the row at the write-ahead's orders INSERT, till its commit. Its docstring
claims it is the write-ahead's last lock, so its holder never waits for another row and
no cycle can form. Here a placement on account A is held right after that INSERT, holding
the account row (share mode), A's day counter and the user's count row, while, of the same
user, a second placement on A, a placement on B, protection on A and PnL runs of A and B
queue up behind it. Released, every one of them must complete: a write-ahead that, after
taking the count row, waited for anything those hold (say, it UPDATEd the account row: an
S -> X upgrade against the other share holder) would end in a 1213.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal as D

import pytest

from orders.models import Order, OrderLeg, UserOrderCount
from orders.services import place_protective_legs, place_single_order
from pnl.services import compute_account_pnl
from tests.concurrency import start_thread
from tests.factories import (
    legs_of,
    make_account,
    make_desk,
    place_bracket_near_1000,
    set_price_and_match,
    single_request,
    sync_positions,
)

pytestmark = pytest.mark.django_db(transaction=True)

HOLD = 1.0  # how long the first placement keeps the count row while the others queue


def test_one_user_two_accounts_placement_protection_and_pnl_queue_on_the_count_row_and_all_complete():
    user, account_a, instrument = make_desk(symbol="SBIN")
    account_b = make_account(user=user)
    bracket = place_bracket_near_1000(account=account_a, instrument=instrument)
    set_price_and_match(instrument, "994")
    sync_positions(account_a)  # the entry FILLED, no exit yet: protection has work
    holding = threading.Event()
    errors: list[BaseException] = []
    placed: list[Order] = []

    def hold_after_the_orders_insert(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith("INSERT INTO `orders`") and not holding.is_set():
            holding.set()
            time.sleep(HOLD)  # the count row, the account row and A's counter are held
        return result

    def place(account):
        def work():
            request = single_request(
                account, symbol=instrument.trading_symbol, limit_price=D("990")
            )
            placed.append(place_single_order(user=user, request=request).order)

        return work

    first = start_thread(errors, place(account_a), hold_after_the_orders_insert)
    assert holding.wait(10)
    others = [
        start_thread(errors, place(account_a)),
        start_thread(errors, place(account_b)),
        start_thread(errors, lambda: place_protective_legs(account=account_a)),
        start_thread(errors, lambda: compute_account_pnl(account=account_a)),
        start_thread(errors, lambda: compute_account_pnl(account=account_b)),
    ]
    for thread in [first, *others]:
        thread.join(60)
        assert not thread.is_alive(), "a thread hung"

    assert errors == []  # no 1213 / 1205
    assert len(placed) == 3
    assert {order.status for order in placed} == {Order.Status.OPEN}
    assert len(legs_of(bracket, OrderLeg.Role.STOP_LOSS)) == 1
    count = UserOrderCount.objects.get(user_id=user.pk).total
    assert count == Order.objects.filter(user_id=user.pk).count() == 4
