"""Fixtures of the web UI tests: signed-in clients and orders made straight from the models."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from orders.models import Order, OrderEvent, OrderLeg
from tests.factories import DEFAULT_PASSWORD, make_account, make_instrument, make_user

_uid = iter(range(1, 10**6))


def make_order(*, account, instrument=None, status=Order.Status.OPEN, **extra) -> Order:
    """An order with one entry leg and one audit event, written directly (display tests)."""
    instrument = instrument or make_instrument()
    order = Order.objects.create(
        user=account.user,
        account=account,
        instrument=instrument,
        symbol=instrument.trading_symbol,
        exchange_segment=instrument.exchange_segment,
        exchange_instrument_id=instrument.exchange_instrument_id,
        side=extra.pop("side", "BUY"),
        quantity=extra.pop("quantity", 10),
        order_type=extra.pop("order_type", "LIMIT"),
        limit_price=extra.pop("limit_price", Decimal("100.00")),
        status=status,
        **extra,
    )
    OrderLeg.objects.create(
        order=order,
        account=account,
        role=OrderLeg.Role.ENTRY,
        order_type=order.order_type,
        side=order.side,
        quantity=order.quantity,
        limit_price=order.limit_price,
        unique_identifier=f"W{next(_uid):08d}",
        status=OrderLeg.Status.OPEN,
    )
    OrderEvent.objects.create(
        order=order,
        account=account,
        user=account.user,
        actor="test",
        kind="order_placed",
        message="placed by the test",
    )
    return order


@pytest.fixture
def trader(db):
    return make_user()


@pytest.fixture
def other_trader(db):
    return make_user()


@pytest.fixture
def account(trader):
    return make_account(user=trader, name="Main paper")


@pytest.fixture
def web(trader) -> Client:
    client = Client()
    assert client.login(username=trader.username, password=DEFAULT_PASSWORD)
    return client


@pytest.fixture
def csrf_web(trader) -> Client:
    """A signed-in browser-like client that enforces CSRF on every POST."""
    client = Client(enforce_csrf_checks=True)
    assert client.login(username=trader.username, password=DEFAULT_PASSWORD)
    return client
