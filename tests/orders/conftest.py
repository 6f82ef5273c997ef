"""Fixtures for the order tests: a trader with a paper account and priced instruments, and
helpers that drive the paper exchange the way the monitoring loop does."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from orders.brokers.sessions import broker_client
from orders.models import Order, OrderLeg
from orders.services import store_broker_snapshots, sync_account_orders
from orders.validation import BracketOrderRequest, SingleOrderRequest, TargetSpec
from tests.factories import (
    api_client_for,
    make_account,
    make_fair_price,
    make_instrument,
    make_user,
)

D = Decimal
_seq = itertools.count(1)


@pytest.fixture
def trader(db):
    return make_user()


@pytest.fixture
def account(trader):
    return make_account(user=trader)


@pytest.fixture
def instrument(db):
    """RELIANCE-like: lot 1, tick 0.05, freeze 10,000, band 1..100,000, trading at 100."""
    inst = make_instrument(symbol="RELIANCE", lot_size=1, freeze_quantity=10000)
    make_fair_price(inst, D("100.00"))
    return inst


@pytest.fixture
def future(db):
    """A derivative with lot 50, tick 0.05, freeze 1,800, band 50..150, trading at 100."""
    inst = make_instrument(
        symbol="NIFTYFUT",
        segment="NSEFO",
        lot_size=50,
        freeze_quantity=1800,
        band=(D("50.00"), D("150.00")),
    )
    make_fair_price(inst, D("100.00"))
    return inst


@pytest.fixture
def client(trader):
    return api_client_for(trader)


def single_request(account, **overrides) -> SingleOrderRequest:
    fields = {
        "account_id": account.pk,
        "order_side": "BUY",
        "order_type": "LIMIT",
        "order_quantity": 10,
        "symbol": "RELIANCE",
        "limit_price": D("99.00"),
    }
    fields.update(overrides)
    return SingleOrderRequest(**fields)


def bracket_request(account, **overrides) -> BracketOrderRequest:
    """BUY 100 RELIANCE at 99, SL stop 95.50 / limit 95, targets 105 (50) and 110 (50)."""
    fields = {
        "account_id": account.pk,
        "no_of_lots": 100,
        "entry_price": D("99.00"),
        "sl_price": D("95.00"),
        "sl_stop_price": D("95.50"),
        "trading_symbol": "RELIANCE",
        "targets": [TargetSpec(price=D("105"), lots=50), TargetSpec(price=D("110"), lots=50)],
    }
    fields.update(overrides)
    return BracketOrderRequest(**fields)


def sync_from_broker(account) -> list[int]:
    """Steps 1 and 3 of a cycle: one order-book read (exactly one paper-exchange tick, so
    partial fills advance one step per call), stored and synced onto our legs and orders."""
    client = broker_client(account)
    book = async_to_sync(client.order_book)()
    store_broker_snapshots(account=account, order_book=book, trades=[], positions=[], balance=None)
    return sync_account_orders(account=account, order_book=book, positions=[])


def legs_of(order: Order, role: str | None = None) -> list[OrderLeg]:
    legs = OrderLeg.objects.filter(order=order).order_by("id")
    return list(legs.filter(role=role) if role else legs)


def make_order(*, user, account, instrument, strategy=None, status=Order.Status.OPEN, **extra):
    """An order row with an entry leg, written directly (for list and isolation tests)."""
    order = Order.objects.create(
        user=user,
        account=account,
        instrument=instrument,
        symbol=instrument.trading_symbol,
        exchange_segment=instrument.exchange_segment,
        exchange_instrument_id=instrument.exchange_instrument_id,
        side=extra.pop("side", "BUY"),
        quantity=extra.pop("quantity", 10),
        order_type="LIMIT",
        limit_price=D("99.00"),
        status=status,
        strategy=strategy,
        **extra,
    )
    OrderLeg.objects.create(
        order=order,
        account=account,
        role=OrderLeg.Role.ENTRY,
        order_type="LIMIT",
        side=order.side,
        quantity=order.quantity,
        limit_price=order.limit_price,
        unique_identifier=f"T{next(_seq)}",
        broker_order_id=str(next(_seq)),
        status={
            Order.Status.PENDING: OrderLeg.Status.PENDING_SUBMIT,
            Order.Status.COMPLETED: OrderLeg.Status.FILLED,
        }.get(status, status),
    )
    return order


def set_price(instrument, price) -> None:
    make_fair_price(instrument, D(str(price)))
