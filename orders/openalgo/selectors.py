"""Reads for the OpenAlgo API: instruments by OpenAlgo symbol, the caller's orders, search,
the trading calendar. Querysets and rows in the desk's terms; the views shape OpenAlgo's
answers (orders.openalgo.presenters)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from django.db.models import Q, QuerySet

from accounts.models import BrokerAccount
from orders.models import Instrument, Order, OrderLeg
from orders.openalgo.fields import OpenAlgoInvalid
from orders.openalgo.mapping import (
    CALL,
    EQUITY,
    FUTURE,
    MONTHS,
    PUT,
    MappingError,
    SymbolSpec,
    parse_derivative_symbol,
    parse_symbol,
    segment_of_exchange,
)
from trading_site.core.errors import NotFound
from trading_site.core.market_hours import (
    MARKET_TZ,
    current_rules,
    holidays_between,
    is_trading_day,
    market_now,
)
from trading_site.core.models import TradingHoliday

MAX_SEARCH_RESULTS = 100


# ---- instruments ----------------------------------------------------------------------------


def _spec_filter(spec: SymbolSpec) -> Q:
    """The master rows an OpenAlgo derivative spec names: the base is the master's Name
    (XTS's `NIFTY`; its UnderlyingIndexName may read `Nifty 50`) or its underlying."""
    query = Q(expiry=spec.expiry) & (Q(name__iexact=spec.base) | Q(underlying__iexact=spec.base))
    if spec.kind == FUTURE:
        return query & ~Q(option_type__in=(CALL, PUT))
    return query & Q(option_type=spec.kind, strike_price=spec.strike)


def _the_one(
    found: list[Instrument], *, unknown: dict[str, list[str]], several: dict[str, list[str]]
) -> Instrument:
    """The one instrument a symbol names (`found` holds at most two); none, or several, is
    the refusal given."""
    if not found:
        raise OpenAlgoInvalid(unknown)
    if len(found) > 1:
        raise OpenAlgoInvalid(several)
    return found[0]


def resolve_instrument(*, exchange: str, symbol: str) -> Instrument:
    """The instrument an OpenAlgo (exchange, symbol) names: an equity's base symbol, a
    future's or option's OpenAlgo symbol, or the broker's own trading symbol on that
    segment. An unknown or ambiguous symbol is an error naming it."""
    try:
        segment = segment_of_exchange(exchange)
        spec = parse_symbol(symbol, exchange)
    except MappingError as exc:
        raise OpenAlgoInvalid({exc.field: [exc.message]}) from None
    text = symbol.strip().upper()
    rows = Instrument.objects.filter(exchange_segment=segment).select_related("fair_price")
    found: list[Instrument] = []
    if spec is not None and spec.kind != EQUITY:
        found = list(rows.filter(_spec_filter(spec))[:2])
    if not found:
        found = list(rows.filter(trading_symbol=text)[:2])
    return _the_one(
        found,
        unknown={"symbol": [f"unknown symbol {symbol.strip()!r} on {exchange}"]},
        several={"symbol": [f"{symbol.strip()!r} on {exchange} names several instruments"]},
    )


def resolve_instrument_anywhere(*, symbol: str) -> Instrument:
    """An instrument named without an exchange (OpenAlgo's strategy webhook): the broker's
    trading symbol where it is unique, else an OpenAlgo derivative symbol where it is."""
    text = (symbol or "").strip().upper()
    if not text:
        raise OpenAlgoInvalid({"symbol": ["is required"]})
    rows = Instrument.objects.select_related("fair_price")
    found = list(rows.filter(trading_symbol=text)[:2])
    if not found:
        spec = parse_derivative_symbol(text)
        if spec is not None:
            found = list(rows.filter(_spec_filter(spec))[:2])
    return _the_one(
        found,
        unknown={"symbol": [f"unknown symbol {symbol.strip()!r}"]},
        several={"exchange": [f"{symbol.strip()!r} is on several exchanges: name one"]},
    )


def instrument_by_segment_id(segment: str, instrument_id: int) -> Instrument | None:
    return (
        Instrument.objects.filter(exchange_segment=segment, exchange_instrument_id=instrument_id)
        .select_related("fair_price")
        .first()
    )


def instruments_by_key(keys: set[tuple[str, int]]) -> dict[tuple[str, int], Instrument]:
    """Instruments for many (segment, exchange instrument id) pairs, in one query."""
    if not keys:
        return {}
    query = Q()
    for segment, instrument_id in keys:
        query |= Q(exchange_segment=segment, exchange_instrument_id=instrument_id)
    return {
        (i.exchange_segment, int(i.exchange_instrument_id)): i
        for i in Instrument.objects.filter(query).select_related("fair_price")
    }


def search_instruments(*, query: str, exchange: str = "") -> list[Instrument]:
    """OpenAlgo's search: every word must match. A month (DEC), CE/PE, FUT or a number (a
    strike) narrow the derivatives; other words match the symbol, name or underlying; a
    whole OpenAlgo symbol finds its instrument."""
    rows = Instrument.objects.select_related("fair_price")
    if exchange:
        try:
            rows = rows.filter(exchange_segment=segment_of_exchange(exchange))
        except MappingError as exc:
            raise OpenAlgoInvalid({exc.field: [exc.message]}) from None
    words = query.upper().split()
    if not words:
        raise OpenAlgoInvalid({"query": ["is required"]})
    for word in words:
        spec = parse_derivative_symbol(word)
        if spec is not None:
            rows = rows.filter(_spec_filter(spec))
        elif word in MONTHS:
            rows = rows.filter(expiry__month=MONTHS.index(word) + 1)
        elif word in (CALL, PUT):
            rows = rows.filter(option_type=word)
        elif word == FUTURE:
            rows = rows.filter(expiry__isnull=False).exclude(option_type__in=(CALL, PUT))
        elif _is_number(word):
            rows = rows.filter(strike_price=Decimal(word))
        else:
            rows = rows.filter(
                Q(trading_symbol__icontains=word)
                | Q(name__icontains=word)
                | Q(underlying__icontains=word)
            )
    return list(
        rows.order_by("name", "expiry", "strike_price", "option_type", "id")[:MAX_SEARCH_RESULTS]
    )


def _is_number(word: str) -> bool:
    try:
        return Decimal(word).is_finite()
    except InvalidOperation:
        return False


# ---- orders ---------------------------------------------------------------------------------


def orders_of_the_day(*, account: BrokerAccount, day: date | None = None) -> QuerySet[Order]:
    """The account's orders placed on the exchange's day (Asia/Kolkata), oldest first, with
    their legs (a leg's average price is the order's)."""
    day = day or market_now().date()
    start = datetime.combine(day, time.min, tzinfo=MARKET_TZ)
    return (
        Order.objects.filter(
            account=account, created_at__gte=start, created_at__lt=start + timedelta(days=1)
        )
        .select_related("instrument", "strategy")
        .prefetch_related("legs")
        .order_by("created_at", "id")
    )


def order_on_account(*, account: BrokerAccount, order_id: int) -> Order:
    """One order of the account the key acts on; anyone else's (another user's, another
    account's) is the same 404 as a missing one."""
    order = (
        Order.objects.filter(pk=order_id, account=account)
        .select_related("account", "instrument", "strategy")
        .prefetch_related("legs")
        .first()
    )
    if order is None:
        raise NotFound("Order not found", details={"orderid": order_id})
    return order


def working_orders(*, account: BrokerAccount) -> QuerySet[Order]:
    """The account's orders whose entry may still be working at the broker."""
    return (
        Order.objects.filter(
            account=account,
            status__in=(Order.Status.PENDING, Order.Status.OPEN, Order.Status.PARTIALLY_FILLED),
        )
        .select_related("account", "instrument")
        .order_by("id")
    )


# ---- the calendar ---------------------------------------------------------------------------


def holidays_of_year(year: int) -> list[TradingHoliday]:
    return list(
        TradingHoliday.objects.filter(date__gte=date(year, 1, 1), date__lte=date(year, 12, 31))
    )


def trading_session(day: date) -> tuple[datetime, datetime] | None:
    """When the desk takes live orders on `day` (its trading window, the same for every
    exchange it trades), or None on a weekend or holiday. A window configured always open
    (the paper-only embedded default) is the whole day."""
    rules = current_rules()
    if rules.always_open:
        start = datetime.combine(day, time.min, tzinfo=MARKET_TZ)
        return start, start + timedelta(days=1)
    if not is_trading_day(day, rules, holidays_between(day, day)):
        return None
    return (
        datetime.combine(day, rules.opens, tzinfo=MARKET_TZ),
        datetime.combine(day, rules.closes, tzinfo=MARKET_TZ),
    )


def order_ids_by_leg_identifier(*, account: BrokerAccount, identifiers: set[str]) -> dict[str, int]:
    """Desk order ids of the account's legs, by the unique identifier a fill carries."""
    if not identifiers:
        return {}
    return dict(
        OrderLeg.objects.filter(account=account, unique_identifier__in=identifiers).values_list(
            "unique_identifier", "order_id"
        )
    )
