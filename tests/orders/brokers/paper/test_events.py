"""The paper exchange publishes its events after commit: to Redis Streams (full stack), in
memory (embedded); none for a rolled-back transaction or a simulator login's book."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import redis
from asgiref.sync import async_to_sync
from django.db import transaction
from django_redis import get_redis_connection

from orders.brokers.event_codec import decode_event
from orders.brokers.events import BrokerEventKind
from orders.brokers.paper import events as paper_events
from orders.brokers.paper import exchange
from orders.brokers.paper.book import book_for_account, book_named
from orders.brokers.sessions import broker_client
from orders.domain.vocabulary import LegStatus
from tests.factories import (
    limit_modify_request,
    make_account,
    make_fair_price,
    make_instrument,
    order_request,
    record_price,
)
from tests.trading_site.test_redis_budgets import redis_round_trips

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal


@pytest.fixture
def instrument():
    inst = make_instrument(symbol="TCS", band=(D("100"), D("10000")))
    make_fair_price(inst, "3500.00", spread="0.10")
    return inst


def published(account_id: int | None = None) -> list:
    client = get_redis_connection("default")
    found = []
    for partition in range(paper_events.partitions()):
        for _id, fields in client.xrange(paper_events.stream_key(partition)):
            found.append(decode_event(fields[b"e"]))
    return [e for e in found if account_id is None or e.account_id == account_id]


def test_a_market_order_s_fill_is_published_after_commit(instrument):
    account = make_account()
    ack = async_to_sync(broker_client(account).place_order)(order_request(instrument, "p-1"))
    events = published(account.pk)
    assert [e.kind for e in events] == [BrokerEventKind.ORDER, BrokerEventKind.TRADE]
    order, trade = events
    assert order.source == "paper" and order.account_id == account.pk
    assert order.order.broker_order_id == ack.broker_order_id
    assert order.order.status == LegStatus.FILLED and order.order.filled_quantity == 5
    assert trade.trade.broker_order_id == ack.broker_order_id and trade.trade.quantity == 5
    # the event's rows are the paper gateway's rows, what the sync reads
    [book_row] = async_to_sync(broker_client(account).order_book)()
    assert book_row == order.order


def test_an_account_s_events_stay_in_one_partition(instrument, settings):
    settings.PAPER_EVENT_PARTITIONS = 3
    account = make_account()
    key = paper_events.stream_key(paper_events.partition_of(account.pk))
    async_to_sync(broker_client(account).place_order)(order_request(instrument, "p-a"))
    async_to_sync(broker_client(account).place_order)(order_request(instrument, "p-b"))
    assert get_redis_connection("default").xlen(key) == 4
    assert len(published(account.pk)) == 4


def test_a_rolled_back_transaction_publishes_nothing(instrument):
    account = make_account()
    book = book_for_account(account.pk)
    with pytest.raises(RuntimeError), transaction.atomic():
        exchange.submit_order(book=book, request=order_request(instrument, "p-rollback"))
        raise RuntimeError("the caller's transaction fails after the fill")
    assert published() == []
    # nothing was written either
    assert async_to_sync(broker_client(account).order_book)() == []


def test_resting_then_filled_by_a_price_move_then_modify_and_cancel(instrument):
    account = make_account()
    client = broker_client(account)
    rest = async_to_sync(client.place_order)(
        order_request(instrument, "p-rest", order_type="LIMIT", limit=D("3400.00"))
    )
    other = async_to_sync(client.place_order)(
        order_request(instrument, "p-other", order_type="LIMIT", limit=D("3000.00"))
    )
    async_to_sync(client.modify_order)(
        limit_modify_request(other.broker_order_id, "p-other", quantity=8, limit=D("3001.00"))
    )
    async_to_sync(client.cancel_order)(other.broker_order_id, "p-other")
    record_price(instrument, "3390")
    events = published(account.pk)
    rows = [
        (
            e.kind,
            e.order.unique_identifier if e.order else e.trade.unique_identifier,
            e.order.status if e.order else None,
        )
        for e in events
    ]
    assert rows == [
        (BrokerEventKind.ORDER, "p-rest", LegStatus.OPEN),
        (BrokerEventKind.ORDER, "p-other", LegStatus.OPEN),
        (BrokerEventKind.ORDER, "p-other", LegStatus.OPEN),  # modified
        (BrokerEventKind.ORDER, "p-other", LegStatus.CANCELLED),
        (BrokerEventKind.ORDER, "p-rest", LegStatus.FILLED),  # the price moved through it
        (BrokerEventKind.TRADE, "p-rest", None),
    ]
    assert events[2].order.quantity == 8 and events[2].order.limit_price == D("3001.00")
    assert events[-1].trade.broker_order_id == rest.broker_order_id


def test_a_batch_s_events_are_appended_by_one_script_in_order(instrument):
    """One account's batch goes to one stream: one script call appends its events in the
    batch's order (not a pipeline of an XADD each: redis-py's Python per command)."""
    account = make_account()
    book = book_for_account(account.pk)
    requests = [
        order_request(instrument, f"bt-{n}", order_type="LIMIT", limit=D("3400.00"))
        for n in range(5)
    ]
    with redis_round_trips() as sent:
        exchange.submit_orders(book=book, requests=requests)

    assert [trip for trip in sent if "XADD" in trip] == []
    assert [trip for trip in sent if trip in (["EVALSHA"], ["EVAL"])], sent
    events = published(account.pk)
    assert [(e.order.unique_identifier, e.order.status) for e in events] == [
        (f"bt-{n}", LegStatus.OPEN) for n in range(5)
    ]


def test_a_simulator_login_s_book_publishes_nothing(instrument):
    exchange.submit_order(
        book=book_named("xts:someone"), request=order_request(instrument, "p-sim")
    )
    assert published() == []


def test_the_backlog_is_capped(instrument, settings):
    settings.PAPER_EVENT_BACKLOG = 100
    settings.PAPER_EVENT_PARTITIONS = 1
    account = make_account()
    book = book_for_account(account.pk)
    for n in range(150):  # 300 events
        exchange.submit_order(book=book, request=order_request(instrument, f"cap-{n}", quantity=1))
    length = get_redis_connection("default").xlen(paper_events.stream_key(0))
    assert 100 <= length < 300


def test_redis_gone_at_publish_time_loses_the_event_but_not_the_order(instrument, monkeypatch):
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(paper_events, "get_redis_connection", lambda alias: dead)
    account = make_account()
    ack = async_to_sync(broker_client(account).place_order)(order_request(instrument, "p-lost"))
    [row] = async_to_sync(broker_client(account).order_book)()
    assert row.broker_order_id == ack.broker_order_id and row.status == LegStatus.FILLED


def test_in_memory_events_wait_for_a_consumer_then_arrive_in_order(instrument, settings):
    settings.PAPER_EVENTS_TRANSPORT = "memory"
    bus = paper_events.MemoryBus()
    original = paper_events.memory_bus
    paper_events.memory_bus = bus
    try:
        account = make_account()
        async_to_sync(broker_client(account).place_order)(order_request(instrument, "m-1"))
        assert bus.waiting() == 2
        received = []

        async def consume():
            loop = asyncio.get_running_loop()
            bus.attach(loop, received.extend)
            await asyncio.sleep(0.05)
            await asyncio.to_thread(
                async_to_sync(broker_client(account).place_order), order_request(instrument, "m-2")
            )
            await asyncio.sleep(0.05)
            bus.detach()

        asyncio.run(consume())
        assert [(e.kind, (e.order or e.trade).unique_identifier) for e in received] == [
            (BrokerEventKind.ORDER, "m-1"),
            (BrokerEventKind.TRADE, "m-1"),
            (BrokerEventKind.ORDER, "m-2"),
            (BrokerEventKind.TRADE, "m-2"),
        ]
        assert published() == []  # nothing went to Redis
    finally:
        paper_events.memory_bus = original


def test_in_memory_events_without_a_consumer_are_capped(instrument, settings):
    settings.PAPER_EVENTS_TRANSPORT = "memory"
    settings.PAPER_EVENT_BACKLOG = 100
    bus = paper_events.MemoryBus()
    original = paper_events.memory_bus
    paper_events.memory_bus = bus
    try:
        book = book_for_account(make_account().pk)
        for n in range(60):
            exchange.submit_order(
                book=book, request=order_request(instrument, f"mc-{n}", quantity=1)
            )
        assert bus.waiting() == 100 and bus.dropped == 20
    finally:
        paper_events.memory_bus = original
