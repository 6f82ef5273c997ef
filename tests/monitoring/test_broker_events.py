"""Broker events handled at once (issue 12 item 4): an order row or a trade, built from the
paper exchange's real rows after a real fill (or read from the XTS simulator over its
socket), applied through `monitoring.events.handle_broker_event`: the leg moves, protection
and one-cancels-other happen at once, the PnL follows, and the browser hears of it. The same
event twice, events out of order and an event racing the cycle never send anything twice."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from decimal import Decimal as D

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.services import create_auth_session
from monitoring.events import (
    act_on_broker_events,
    handle_broker_event,
    handle_broker_events,
    resync_account,
)
from monitoring.services import run_user_cycle
from orders.brokers.paper.book import book_for_account, order_rows, trade_rows
from orders.brokers.paper.exchange import submit_order
from orders.brokers.paper.models import PaperOrder
from orders.brokers.sessions import broker_client
from orders.brokers.streams.dispatch import Dispatcher, resolve_handlers
from orders.models import BrokerOrder, BrokerPosition, BrokerTrade, Order, OrderEvent, OrderLeg
from orders.services.events import apply_broker_events
from orders.services.exclusion import account_exclusion
from tests.factories import (
    broker_event,
    make_desk,
    make_priced_instrument,
    make_user,
    make_xts_account,
    order_request,
    paper_order_row,
    paper_position_row,
    place_bracket_near_1000,
    set_price_and_match,
)
from tests.monitoring.support import assert_closed_by_one_cancel, cancels_sent
from tests.servers import WsClient

pytestmark = pytest.mark.django_db(transaction=True)

Role = OrderLeg.Role
# Queries of the urgent half of one paper entry fill (`act_on_broker_events`), today's
# count: lower it when the path gets cheaper (50 before the event path's reads were cut).
ACT_ON_ONE_FILL = 39


def _paper_trade_rows(account, leg):
    book = book_for_account(account.pk)
    return [row for row in trade_rows(book) if row.unique_identifier == leg.unique_identifier]


def _paper_orders(account) -> int:
    return PaperOrder.objects.filter(book__account_id=account.pk).count()


def _legs(order, role):
    return list(order.legs.filter(role=role).order_by("id"))


@pytest.fixture
def desk():
    return make_desk(symbol="HDFCBANK")


def _filled_bracket_events(desk):
    """A bracket whose entry the paper exchange filled, and the fill's events as its stream
    hands them over: the entry's order row, then its trades."""
    user, account, instrument = desk
    order = _bracket(user, account, instrument)
    [entry] = _legs(order, Role.ENTRY)
    set_price_and_match(instrument, "994")
    events = [broker_event(account, order=paper_order_row(account, entry))]
    events += [broker_event(account, trade=trade) for trade in _paper_trade_rows(account, entry)]
    return order, events


def _bracket(user, account, instrument, **extra):
    return place_bracket_near_1000(account=account, instrument=instrument, **extra)


def test_an_entry_fill_event_protects_at_once_updates_pnl_and_tells_the_browser(desk, listen):
    user, account, instrument = desk
    order = _bracket(user, account, instrument)
    [entry] = _legs(order, Role.ENTRY)
    set_price_and_match(instrument, "994")  # the paper exchange fills the entry
    listener = listen(user.pk)

    handle_broker_event(broker_event(account, order=paper_order_row(account, entry)))
    for trade in _paper_trade_rows(account, entry):
        handle_broker_event(broker_event(account, trade=trade))

    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == (Order.Status.FILLED, 10)
    [sl] = _legs(order, Role.STOP_LOSS)
    [tp] = _legs(order, Role.TAKE_PROFIT)
    assert (sl.status, sl.quantity, tp.status, tp.quantity) == ("OPEN", 10, "OPEN", 10)
    assert _paper_orders(account) == 3  # entry, stop-loss, target: at the broker now
    assert BrokerTrade.objects.filter(account=account).count() == 1
    account.refresh_from_db()
    # Long 10 at 994 (the fill), marked at 994: the FIFO ran for the fill.
    order.refresh_from_db()
    assert order.open_position == 10
    messages = listener.drain()
    updates = [m for m in messages if m["type"] == "order_update" and m["order_id"] == order.pk]
    assert updates and updates[-1]["status"] == "FILLED"
    pnl = [m for m in messages if m["type"] == "pnl_update"]
    assert pnl and pnl[-1]["account_id"] == account.pk


def test_a_run_of_events_protects_every_filled_bracket_once_with_one_pnl_update(desk, listen):
    # A burst of two brackets' fills handed as one run (the dispatcher does so when events
    # queue up), repeated in the same run: each bracket gets one stop-loss and one target,
    # the FIFO runs and the browser hears of the PnL once.
    user, account, instrument = desk
    orders = [_bracket(user, account, instrument) for _ in range(2)]
    set_price_and_match(instrument, "994")
    events = []
    for order in orders:
        [entry] = _legs(order, Role.ENTRY)
        events.append(broker_event(account, order=paper_order_row(account, entry)))
        events += [
            broker_event(account, trade=trade) for trade in _paper_trade_rows(account, entry)
        ]
    listener = listen(user.pk)

    handle_broker_events(events + events)

    for order in orders:
        order.refresh_from_db()
        assert (order.status, order.filled_quantity, order.open_position) == ("FILLED", 10, 10)
        [sl] = _legs(order, Role.STOP_LOSS)
        [tp] = _legs(order, Role.TAKE_PROFIT)
        assert (sl.status, sl.quantity, tp.status, tp.quantity) == ("OPEN", 10, "OPEN", 10)
    assert _paper_orders(account) == 6
    messages = listener.drain()
    assert [m["account_id"] for m in messages if m["type"] == "pnl_update"] == [account.pk]
    filled = {m["order_id"] for m in messages if m["type"] == "order_update"}
    assert filled >= {order.pk for order in orders}


def test_the_same_events_twice_place_nothing_twice_and_write_nothing_twice(desk):
    user, account, instrument = desk
    order = _bracket(user, account, instrument)
    [entry] = _legs(order, Role.ENTRY)
    set_price_and_match(instrument, "994")
    row = paper_order_row(account, entry)
    [trade] = _paper_trade_rows(account, entry)
    handle_broker_event(broker_event(account, order=row))
    handle_broker_event(broker_event(account, trade=trade))
    legs, audit, paper = order.legs.count(), OrderEvent.objects.count(), _paper_orders(account)

    handle_broker_event(broker_event(account, order=row))
    handle_broker_event(broker_event(account, trade=trade))
    handle_broker_event(broker_event(account, order=row))

    assert order.legs.count() == legs == 3
    assert _paper_orders(account) == paper == 3
    assert OrderEvent.objects.count() == audit  # not even an audit row
    assert BrokerTrade.objects.filter(account=account).count() == 1


def test_a_trade_before_its_order_row_fills_the_leg_and_the_row_changes_nothing(desk):
    user, account, instrument = desk
    order = _bracket(user, account, instrument)
    [entry] = _legs(order, Role.ENTRY)
    set_price_and_match(instrument, "994")
    [trade] = _paper_trade_rows(account, entry)

    handle_broker_event(broker_event(account, trade=trade))
    entry.refresh_from_db()
    assert (entry.status, entry.filled_quantity, entry.average_price) == ("FILLED", 10, trade.price)
    assert len(_legs(order, Role.STOP_LOSS)) == len(_legs(order, Role.TAKE_PROFIT)) == 1
    audit = OrderEvent.objects.count()

    handle_broker_event(broker_event(account, order=paper_order_row(account, entry)))
    assert order.legs.count() == 3 and _paper_orders(account) == 3
    assert OrderEvent.objects.count() == audit


def test_a_filled_row_before_the_partially_filled_one_is_not_undone_nor_protected_twice(
    desk, settings
):
    user, account, instrument = desk
    order = _bracket(user, account, instrument)
    [entry] = _legs(order, Role.ENTRY)
    settings.PAPER_FILL_CAP = 4
    set_price_and_match(instrument, "994")  # one tick: 4 of 10
    partial = paper_order_row(account, entry)
    assert (partial.status, partial.filled_quantity) == ("PARTIALLY_FILLED", 4)
    set_price_and_match(instrument, "994")
    set_price_and_match(instrument, "994")  # 8, then 10
    filled = paper_order_row(account, entry)
    assert (filled.status, filled.filled_quantity) == ("FILLED", 10)

    handle_broker_event(broker_event(account, order=filled))
    handle_broker_event(broker_event(account, order=partial))  # late, older news

    entry.refresh_from_db()
    assert (entry.status, entry.filled_quantity) == ("FILLED", 10)
    [sl] = _legs(order, Role.STOP_LOSS)
    [tp] = _legs(order, Role.TAKE_PROFIT)
    assert sl.quantity == tp.quantity == 10
    assert _paper_orders(account) == 3
    assert not OrderEvent.objects.filter(kind="illegal_transition").exists()


def test_an_event_for_an_order_placed_outside_the_desk_is_stored_and_logged_once(desk, caplog):
    user, account, instrument = desk
    book = book_for_account(account.pk)
    outside = submit_order(
        book=book,
        request=order_request(instrument, "typed-at-terminal", order_type="LIMIT", limit=D("990")),
    )
    row = next(r for r in order_rows(book) if r.broker_order_id == str(outside.app_order_id))
    caplog.set_level(logging.INFO, logger="orders.events")

    handle_broker_event(broker_event(account, order=row))
    handle_broker_event(broker_event(account, order=row))

    assert BrokerOrder.objects.filter(account=account, broker_order_id=row.broker_order_id).exists()
    assert not OrderLeg.objects.filter(account=account).exists()
    assert not Order.objects.filter(account=account).exists()
    logged = [r for r in caplog.records if "did not place" in r.getMessage()]
    assert len(logged) == 1


# ---- XTS: the simulator's rows over its socket, its request counters ------------------------


def _xts_row(account, leg):
    book = async_to_sync(broker_client(account).order_book)()
    return next(row for row in book if row.unique_identifier == leg.unique_identifier)


def _xts_bracket_with_its_entry_filled(simulator, symbol):
    """A bracket at an XTS-simulator account whose entry the broker has just filled, before
    any event or cycle told the desk: (user, account, instrument, order)."""
    user = make_user()
    account = make_xts_account(simulator.base_url, user=user)
    instrument = make_priced_instrument(symbol=symbol)
    order = _bracket(user, account, instrument)
    set_price_and_match(instrument, "994")
    return user, account, instrument, order


def test_xts_stop_loss_fill_event_cancels_the_target_once_at_the_broker(simulator):
    user, account, instrument, order = _xts_bracket_with_its_entry_filled(simulator, "RELIANCE")
    [entry] = _legs(order, Role.ENTRY)

    handle_broker_event(broker_event(account, order=_xts_row(account, entry), source="xts-stream"))
    [sl] = _legs(order, Role.STOP_LOSS)
    [tp] = _legs(order, Role.TAKE_PROFIT)
    posts = simulator.stats()["order_posts_by_uid"]
    assert posts[sl.unique_identifier] == posts[tp.unique_identifier] == 1

    set_price_and_match(instrument, "979.5")  # the stop-loss fills at the broker
    sl_row = _xts_row(account, sl)
    assert sl_row.status == "FILLED"
    handle_broker_event(broker_event(account, order=sl_row, source="xts-stream"))
    handle_broker_event(broker_event(account, order=sl_row, source="xts-stream"))  # told twice

    tp.refresh_from_db()
    assert tp.status == "CANCELLED"
    assert_closed_by_one_cancel(order, simulator)
    # The cycle after it finds nothing left to do: no cancel again, no error.
    run = run_user_cycle(user_id=user.pk, cycle_key="after-event", trigger="test")
    assert run.status == "OK", (run.errors, run.steps)
    assert cancels_sent(simulator) == 1
    posts = simulator.stats()["order_posts_by_uid"]
    assert all(count == 1 for count in posts.values()), posts


def test_an_event_racing_the_cycle_sends_one_cancel_and_no_false_error(simulator):
    user, account, instrument, order = _xts_bracket_with_its_entry_filled(simulator, "INFY")
    run_user_cycle(user_id=user.pk, cycle_key="protect", trigger="test")
    [sl] = _legs(order, Role.STOP_LOSS)
    set_price_and_match(instrument, "979.5")
    sl_row = _xts_row(account, sl)
    # A slow broker: the cycle is still reading the books when the stream tells of the fill,
    # so the event's one-cancels-other is in flight when the cycle would plan its own.
    simulator.set_faults(latency_ms=400)
    errors: list[BaseException] = []
    runs = []

    def cycle():
        try:
            runs.append(run_user_cycle(user_id=user.pk, cycle_key="race", trigger="test"))
        except BaseException as exc:
            errors.append(exc)

    def event():
        try:
            handle_broker_event(broker_event(account, order=sl_row, source="xts-stream"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=cycle), threading.Thread(target=event)]
    threads[0].start()
    time.sleep(0.2)
    threads[1].start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    [run] = runs
    assert run.status == "OK", (run.errors, run.steps)
    assert_closed_by_one_cancel(order, simulator)
    assert len(_legs(order, Role.STOP_LOSS)) == len(_legs(order, Role.TAKE_PROFIT)) == 1


def test_resync_runs_steps_one_to_four_for_the_account(desk):
    user, account, instrument = desk
    order = _bracket(user, account, instrument)
    set_price_and_match(instrument, "994")

    resync_account(account.pk, reason="connected")

    order.refresh_from_db()
    assert order.status == Order.Status.FILLED
    assert len(_legs(order, Role.STOP_LOSS)) == len(_legs(order, Role.TAKE_PROFIT)) == 1
    assert BrokerTrade.objects.filter(account=account).count() == 1
    assert order.open_position == 10


@pytest.mark.slow
def test_a_real_websocket_client_sees_the_fill_event_as_order_update_and_pnl_update(
    desk, daphne_server
):
    user, account, instrument = desk
    token, _ = create_auth_session(user=user, client_ip="127.0.0.1", user_agent="events")
    client = WsClient(daphne_server.url(f"/ws/{user.pk}/?token={token}"))
    try:
        client.wait_for(lambda m: m["type"] == "connection_established")
        order = _bracket(user, account, instrument)
        [entry] = _legs(order, Role.ENTRY)
        set_price_and_match(instrument, "994")
        [trade] = _paper_trade_rows(account, entry)

        handle_broker_event(broker_event(account, trade=trade))

        update = client.wait_for(
            lambda m: (
                m["type"] == "order_update"
                and m["order_id"] == order.pk
                and m["status"] == "FILLED"
            )
        )
        assert update["details"]["filled_quantity"] == 10
        client.wait_for(lambda m: m["type"] == "pnl_update" and m["account_id"] == account.pk)
    finally:
        client.close()


def test_a_position_event_stores_the_row_and_pushes_the_new_quantity(desk, listen):
    # The positions page re-renders a row whose quantity moved (desk.js) on this message:
    # without it, the page showed the quantity of the last cycle for up to a minute.
    user, account, instrument = desk
    order = _bracket(user, account, instrument)
    set_price_and_match(instrument, "994")  # the entry fills: long 10 at the broker
    row = paper_position_row(account, instrument)
    assert row.net_qty == 10
    listener = listen(user.pk)

    handle_broker_event(broker_event(account, position=row))

    stored = BrokerPosition.objects.get(
        account=account, exchange_instrument_id=instrument.exchange_instrument_id
    )
    assert stored.net_qty == 10
    pushed = [m for m in listener.drain() if m["type"] == "positions_update"]
    assert pushed and pushed[-1]["account_id"] == account.pk
    assert [p["net_qty"] for p in pushed[-1]["positions"]] == [10]
    assert order.legs.count() == 1  # a position row moves no leg


def test_an_event_for_a_busy_account_is_retried_without_a_traceback_and_applied_after(
    desk, settings, caplog
):
    """A cycle holds the account's exclusion when the fill event comes: the handler finds
    the account busy (an expected condition, logged at info without a traceback), the
    dispatcher tries the same event again, and once the cycle lets go the event is applied:
    protection placed once, nothing lost."""
    settings.ACCOUNT_LOCK_WAIT_SECONDS = 0.1  # the handler waits 0.2 s, then AccountBusy
    _user, account, _instrument = desk
    order, events = _filled_bracket_events(desk)
    dispatcher = Dispatcher(resolve_handlers(), threads=2)
    caplog.set_level(logging.INFO, logger="orders.brokers.streams.dispatch")

    async def deliver():
        await asyncio.gather(*(dispatcher.submit(event) for event in events))

    with account_exclusion(account.pk, purpose="a cycle in the test"):
        runner = threading.Thread(target=asyncio.run, args=(deliver(),))
        runner.start()
        deadline = time.monotonic() + 10
        while dispatcher.busy_retried < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dispatcher.busy_retried >= 2  # tried, found busy, tried again
        assert not _legs(order, Role.STOP_LOSS)  # nothing done while the cycle holds it
    runner.join(30)
    dispatcher.close()

    assert not runner.is_alive()
    assert (dispatcher.failed, dispatcher.handled) == (0, len(events))
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == (Order.Status.FILLED, 10)
    assert len(_legs(order, Role.STOP_LOSS)) == len(_legs(order, Role.TAKE_PROFIT)) == 1
    assert _paper_orders(account) == 3
    records = [r for r in caplog.records if r.name == "orders.brokers.streams.dispatch"]
    busy = [r for r in records if "account busy" in r.getMessage()]
    assert busy and all(r.levelno == logging.INFO and r.exc_info is None for r in busy)
    assert not [r for r in records if r.levelno >= logging.ERROR]


def test_a_run_is_applied_in_one_pass_and_every_leg_that_moved_is_audited(desk):
    # Two brackets' fills (each an order row and a trade) applied as one run: stored
    # together, the legs found and locked together, each leg's move audited once (the trade
    # after its Filled row tells nothing new), in the round trips of one pass, not four
    # times one event's (18 queries for these four; 23 before the run's rows and legs were
    # one transaction, its new trades were counted from what it inserted and its roll-up
    # read only the legs of the orders it had read).
    user, account, instrument = desk
    orders = [_bracket(user, account, instrument) for _ in range(2)]
    set_price_and_match(instrument, "994")
    events, entries = [], []
    for order in orders:
        [entry] = _legs(order, Role.ENTRY)
        entries.append(entry)
        events.append(broker_event(account, order=paper_order_row(account, entry)))
        events += [
            broker_event(account, trade=trade) for trade in _paper_trade_rows(account, entry)
        ]
    assert len(events) == 4

    with (
        account_exclusion(account.pk, purpose="test"),
        CaptureQueriesContext(connection) as queries,
    ):
        effect = apply_broker_events(account=account, events=events)

    assert effect.order_ids == [order.pk for order in orders]
    assert effect.filled_order_ids == [order.pk for order in orders]
    assert effect.new_trades == 2
    for entry in entries:
        entry.refresh_from_db()
        assert (entry.status, entry.filled_quantity) == ("FILLED", 10)
        synced = OrderEvent.objects.filter(leg=entry, kind="leg_synced", actor="broker-event")
        assert synced.count() == 1
    assert len(queries) <= 18, [q["sql"][:80] for q in queries]


def test_an_entry_fill_is_acted_on_in_a_bounded_number_of_queries(desk):
    # The urgent half of one fill (the stream's `act`): its order row and trade stored and
    # applied, the order rolled up, its stop-loss and target written ahead, placed at the
    # paper broker (one transaction with the answers) and the order rolled up again. Each
    # read of the order and its legs is needed once: a cut that is undone shows here.
    _user, account, _instrument = desk
    order, events = _filled_bracket_events(desk)

    with CaptureQueriesContext(connection) as queries:
        left = act_on_broker_events(events)

    assert left == {account.pk: frozenset({"pnl"})}
    [sl] = _legs(order, Role.STOP_LOSS)
    [tp] = _legs(order, Role.TAKE_PROFIT)
    assert (sl.status, tp.status) == ("OPEN", "OPEN")
    assert _paper_orders(account) == 3
    assert len(queries) <= ACT_ON_ONE_FILL, [q["sql"][:80] for q in queries]
