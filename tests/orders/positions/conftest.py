"""A trader with a paper account holding a position, synced as the monitoring loop syncs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from orders.brokers.sessions import broker_client
from orders.models import Order
from orders.services import place_single_order, store_broker_snapshots, sync_account_orders
from tests.factories import (
    api_client_for,
    make_account,
    make_fair_price,
    make_instrument,
    make_user,
    single_request,
)

D = Decimal


def sync_positions(account) -> None:
    """Steps 1 and 3 of a cycle for one account: books and positions read and stored."""
    client = broker_client(account)
    book = async_to_sync(client.order_book)()
    trades = async_to_sync(client.trade_book)()
    positions = async_to_sync(client.positions)()
    store_broker_snapshots(
        account=account, order_book=book, trades=trades, positions=positions, balance=None
    )
    sync_account_orders(account=account, order_book=book, positions=positions)


def buy_at_market(account, instrument, quantity: int, *, product: str = "MIS") -> Order:
    request = single_request(
        account,
        order_type="MARKET",
        limit_price=None,
        order_quantity=quantity,
        symbol=instrument.trading_symbol,
        product_type=product,
    )
    return place_single_order(user=account.user, request=request).order


@pytest.fixture
def trader(db):
    return make_user(username="meera")


@pytest.fixture
def account(trader):
    return make_account(user=trader, name="Paper one")


@pytest.fixture
def instrument(db):
    inst = make_instrument(symbol="TATAPOS", lot_size=1, freeze_quantity=5000)
    make_fair_price(inst, D("100.00"))
    return inst


@pytest.fixture
def client(trader):
    return api_client_for(trader)
