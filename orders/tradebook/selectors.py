"""The trade book: every fill the brokers reported (BrokerTrade, synced each cycle), of the
user's accounts, filtered by account, day(s) and instrument, newest first; which of our
orders and legs each fill belongs to, and what each fill is worth in rupees.

A reporting read (the page, the API and the CSV export): served by the read replica when
`DATABASE_REPLICA_URL` configures one (trading_site.core.db_router), so a long export does
not load the primary; a fill shows there once the replica has it (typically within a
second). Nothing acts on these reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Q, QuerySet

from accounts.models import User
from orders.market.selectors import instruments_filter
from orders.models import BrokerTrade, Instrument, OrderLeg
from trading_site.core.db_router import reporting_alias
from trading_site.core.market_hours import MARKET_TZ


@dataclass(frozen=True)
class TradeFilters:
    account_id: int | None = None
    since: date | None = None  # trading dates (Asia/Kolkata), both inclusive
    until: date | None = None
    symbol: str = ""
    exchange_segment: str = ""
    exchange_instrument_id: int | None = None


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=MARKET_TZ)


def trade_list(*, user: User, filters: TradeFilters) -> QuerySet[BrokerTrade]:
    trades = BrokerTrade.objects.using(reporting_alias()).filter(account__user=user)
    if filters.account_id is not None:
        trades = trades.filter(account_id=filters.account_id)
    if filters.since is not None:
        trades = trades.filter(traded_at__gte=_day_start(filters.since))
    if filters.until is not None:
        trades = trades.filter(traded_at__lt=_day_start(filters.until + timedelta(days=1)))
    if filters.symbol:
        trades = trades.filter(trading_symbol__iexact=filters.symbol.strip())
    if filters.exchange_instrument_id is not None:
        trades = trades.filter(exchange_instrument_id=filters.exchange_instrument_id)
    if filters.exchange_segment:
        trades = trades.filter(exchange_segment=filters.exchange_segment)
    return trades.select_related("account").order_by("-traded_at", "-id")


@dataclass(frozen=True)
class FillOwner:
    order_id: int
    role: str


def owners_of(trades: list[BrokerTrade]) -> dict[tuple[int, str], FillOwner]:
    """(account id, broker order id) -> our order and leg role, for one page of fills (one
    query on the legs' (account, broker order id) index)."""
    pairs = {(t.account_id, t.broker_order_id) for t in trades if t.broker_order_id}
    if not pairs:
        return {}
    condition = Q(pk__in=[])
    for account_id in {a for a, _ in pairs}:
        ids = [b for a, b in pairs if a == account_id]
        condition |= Q(account_id=account_id, broker_order_id__in=ids)
    rows = (
        OrderLeg.objects.using(reporting_alias())
        .filter(condition)
        .values_list("account_id", "broker_order_id", "order_id", "role")
    )
    # b is never None: the query asks for these broker order ids.
    return {(a, b): FillOwner(order_id=o, role=r) for a, b, o, r in rows if b is not None}


def values_of(trades: list[BrokerTrade]) -> dict[int, Decimal]:
    """Fill id -> its value in rupees: price x quantity x its contract's multiplier (10 for
    some MCX contracts; 1 for an instrument the master lacks), for one page of fills (one
    query on the master's (segment, instrument id) key)."""
    if not trades:
        return {}
    keys = {(t.exchange_segment, t.exchange_instrument_id) for t in trades}
    rows = (
        Instrument.objects.using(reporting_alias())
        .filter(instruments_filter(keys))
        .values_list("exchange_segment", "exchange_instrument_id", "multiplier")
    )
    multipliers = {(segment, iid): multiplier for segment, iid, multiplier in rows}
    values = {}
    for t in trades:
        multiplier = multipliers.get((t.exchange_segment, t.exchange_instrument_id), 1)
        values[t.pk] = t.price * t.quantity * multiplier
    return values
