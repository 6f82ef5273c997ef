"""Factories shared by the whole suite: small functions that make valid rows with defaults."""

from __future__ import annotations

import itertools
from decimal import Decimal

from rest_framework.test import APIClient

from accounts.models import Broker, BrokerAccount, Strategy, User
from orders.models import FairPrice, Instrument

_seq = itertools.count(1)

DEFAULT_PASSWORD = "correct-horse-battery-9"


def make_user(*, username: str | None = None, password: str = DEFAULT_PASSWORD, **extra) -> User:
    n = next(_seq)
    username = username or f"trader{n}"
    extra.setdefault("email", f"{username}@example.com")
    return User.objects.create_user(username=username, password=password, **extra)


def make_account(
    *, user: User | None = None, broker: str = Broker.PAPER, name: str | None = None, **extra
) -> BrokerAccount:
    user = user or make_user()
    extra.setdefault("cash_available", Decimal("1000000.00"))
    extra.setdefault("net_margin", Decimal("1000000.00"))
    return BrokerAccount.objects.create(
        user=user, broker=broker, account_name=name or f"account-{next(_seq)}", **extra
    )


def make_instrument(
    *,
    symbol: str | None = None,
    segment: str = "NSECM",
    instrument_id: int | None = None,
    lot_size: int = 1,
    tick_size: Decimal = Decimal("0.05"),
    freeze_quantity: int | None = 10000,
    band: tuple[Decimal, Decimal] | None = (Decimal("1.00"), Decimal("100000.00")),
    **extra,
) -> Instrument:
    n = next(_seq)
    low, high = band if band else (None, None)
    return Instrument.objects.create(
        exchange_segment=segment,
        exchange_instrument_id=instrument_id or 100000 + n,
        trading_symbol=symbol or f"SYM{n}",
        name=symbol or f"SYM{n}",
        series="EQ",
        lot_size=lot_size,
        tick_size=tick_size,
        freeze_quantity=freeze_quantity,
        price_band_low=low,
        price_band_high=high,
        **extra,
    )


def make_fair_price(instrument: Instrument, price: Decimal | str, spread: str = "0") -> FairPrice:
    price = Decimal(str(price))
    half = Decimal(spread) / 2
    fair, _ = FairPrice.objects.update_or_create(
        instrument=instrument,
        defaults={
            "buy_fair_price": price + half,
            "sell_fair_price": price - half,
            "avg_fair_price": price,
            "last_traded_price": price,
            "source": "test",
        },
    )
    return fair


def make_strategy(*, user: User, name: str | None = None, **extra) -> Strategy:
    return Strategy.objects.create(user=user, name=name or f"strategy-{next(_seq)}", **extra)


def api_client_for(user: User) -> APIClient:
    """An API client authenticated the way programs are: a real Bearer session token."""
    from accounts.services import create_auth_session

    token, _session = create_auth_session(user=user, client_ip="127.0.0.1", user_agent="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client
