"""Delivery holdings per account, read from the broker (XTS `portfolio/holdings`; the paper
exchange: CNC positions carried over from earlier days) and valued at the latest price.

Holdings change at most once a day, so a broker's answer is kept for HOLDINGS_CACHE_SECONDS
per account; a broker that cannot answer is reported for its account, the others still show.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from asgiref.sync import async_to_sync
from django.core.cache import cache

from accounts.models import BrokerAccount
from orders.brokers.base import BrokerError, BrokerHoldingRow
from orders.brokers.messages import trader_message
from orders.brokers.sessions import broker_client
from orders.positions.selectors import instrument_prices, money_of

logger = logging.getLogger(__name__)

HOLDINGS_CACHE_SECONDS = 60
CENTS = Decimal("0.01")
ZERO = Decimal("0")


@dataclass
class HoldingRow:
    account_id: int
    exchange_segment: str
    exchange_instrument_id: int
    trading_symbol: str
    isin: str
    quantity: int | None
    pledged_quantity: int | None
    average_price: Decimal | None
    ltp: Decimal | None

    @property
    def invested(self) -> Decimal | None:
        if self.quantity is None or self.average_price is None:
            return None
        return (self.average_price * self.quantity).quantize(CENTS, rounding=ROUND_HALF_UP)

    @property
    def value(self) -> Decimal | None:
        if self.quantity is None or self.ltp is None:
            return None
        return (self.ltp * self.quantity).quantize(CENTS, rounding=ROUND_HALF_UP)

    @property
    def pnl(self) -> Decimal | None:
        if self.value is None or self.invested is None:
            return None
        return self.value - self.invested


@dataclass
class AccountHoldings:
    account_id: int
    account_name: str
    money: str
    rows: list[HoldingRow] = field(default_factory=list)
    supported: bool = True  # False: the broker has no holdings to tell
    error: str = ""

    @property
    def value(self) -> Decimal:
        return sum((row.value for row in self.rows if row.value is not None), ZERO)

    @property
    def pnl(self) -> Decimal:
        return sum((row.pnl for row in self.rows if row.pnl is not None), ZERO)


def _cache_key(account: BrokerAccount) -> str:
    return f"holdings:{account.pk}"


def _broker_holdings(account: BrokerAccount) -> list[BrokerHoldingRow] | None:
    cached = cache.get(_cache_key(account))
    if cached is not None:
        return cached["rows"]
    rows = async_to_sync(broker_client(account).holdings)()
    cache.set(_cache_key(account), {"rows": rows}, timeout=HOLDINGS_CACHE_SECONDS)
    return rows


def account_holdings(account: BrokerAccount) -> AccountHoldings:
    result = AccountHoldings(
        account_id=account.pk, account_name=account.account_name, money=money_of(account)
    )
    try:
        rows = _broker_holdings(account)
    except BrokerError as exc:
        result.error = trader_message(exc, account_id=account.pk)
        return result
    if rows is None:
        result.supported = False
        return result
    prices = instrument_prices((r.exchange_segment, r.exchange_instrument_id) for r in rows)
    for row in rows:
        ltp, instrument = prices.get((row.exchange_segment, row.exchange_instrument_id)) or (
            None,
            None,
        )
        result.rows.append(
            HoldingRow(
                account_id=account.pk,
                exchange_segment=row.exchange_segment,
                exchange_instrument_id=row.exchange_instrument_id,
                trading_symbol=row.trading_symbol
                or (instrument.trading_symbol if instrument is not None else row.isin),
                isin=row.isin,
                quantity=row.quantity,
                pledged_quantity=row.pledged_quantity,
                average_price=row.average_price,
                ltp=ltp,
            )
        )
    result.rows.sort(key=lambda r: r.trading_symbol)
    return result


def holdings_for(*, user, account_id: int | None = None) -> list[AccountHoldings]:
    accounts = BrokerAccount.objects.filter(user=user, is_active=True)
    if account_id is not None:
        accounts = accounts.filter(pk=account_id)
    return [account_holdings(account) for account in accounts.order_by("account_name", "pk")]
