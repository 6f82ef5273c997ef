"""Row builders for PnL tests: orders, legs and broker fills written directly (no services)."""

from __future__ import annotations

import itertools
from datetime import datetime
from decimal import Decimal

from orders.models import BrokerOrder, BrokerTrade, Order, OrderLeg

_seq = itertools.count(1)


def make_order(*, account, instrument, side: str = "BUY", quantity: int = 10, **extra) -> Order:
    return Order.objects.create(
        user=account.user,
        account=account,
        instrument=instrument,
        symbol=instrument.trading_symbol,
        exchange_segment=instrument.exchange_segment,
        exchange_instrument_id=instrument.exchange_instrument_id,
        side=side,
        quantity=quantity,
        order_type="LIMIT",
        status=Order.Status.FILLED,
        **extra,
    )


def make_leg(
    *, order: Order, broker_order_id: str | None, role: str = "ENTRY", side=None, quantity=None
) -> OrderLeg:
    return OrderLeg.objects.create(
        order=order,
        account=order.account,
        role=role,
        order_type="LIMIT",
        side=side or order.side,
        quantity=quantity or order.quantity,
        unique_identifier=f"T{next(_seq)}",
        broker_order_id=broker_order_id,
        status=OrderLeg.Status.FILLED,
    )


def make_trade(
    *, account, instrument, broker_order_id: str, side: str, quantity: int, price: str, at: datetime
) -> BrokerTrade:
    return BrokerTrade.objects.create(
        account=account,
        execution_id=f"X{next(_seq)}",
        broker_order_id=broker_order_id,
        exchange_segment=instrument.exchange_segment,
        exchange_instrument_id=instrument.exchange_instrument_id,
        trading_symbol=instrument.trading_symbol,
        side=side,
        quantity=quantity,
        price=Decimal(price),
        traded_at=at,
    )


def make_broker_order(
    *,
    account,
    instrument,
    broker_order_id: str,
    side: str,
    quantity: int,
    average_price: str | None,
    at: datetime,
) -> BrokerOrder:
    return BrokerOrder.objects.create(
        account=account,
        broker_order_id=broker_order_id,
        exchange_segment=instrument.exchange_segment,
        exchange_instrument_id=instrument.exchange_instrument_id,
        trading_symbol=instrument.trading_symbol,
        side=side,
        order_quantity=quantity,
        cumulative_quantity=quantity if average_price else 0,
        average_traded_price=Decimal(average_price) if average_price else None,
        status="FILLED" if average_price else "OPEN",
        exchange_transact_time=at,
    )
