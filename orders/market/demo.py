"""Demo data and the simulated price feed (the embedded default's moving market).

`seed_demo_data()` is idempotent: the demo user, a PAPER account with its paper book, the
bundled NSE instruments, first fair prices and a demo strategy. `tick_price_feed()` moves
every demo instrument one step of a bounded random walk around its reference price (inside
the price band, snapped to the tick) and writes buy/sell/average fair prices and the LTP
through `record_fair_prices`, so paper orders match on every tick.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from accounts.models import Broker, BrokerAccount, Strategy, User
from orders.brokers.paper.book import book_for_account
from orders.brokers.paper.matching import snap_down, snap_up
from orders.market.instruments import load_bundled_instruments
from orders.market.services import FairPriceInput, record_fair_prices
from orders.models import FairPrice, Instrument

DEMO_PRICES = Path(__file__).resolve().parent / "data" / "demo_prices.csv"
DEMO_ACCOUNT_NAME = "Paper demo"
DEMO_STRATEGY_NAME = "Demo breakout"
MAX_STEP = Decimal("0.003")  # one tick moves at most 0.3 % of the reference price
MAX_DRIFT = Decimal("0.05")  # and the walk stays within 5 % of it

_rng = random.Random()


@dataclass(frozen=True)
class DemoInfo:
    username: str
    password: str
    user_id: int
    account_id: int
    strategy_id: int
    instrument_count: int


@dataclass(frozen=True)
class ReferencePrice:
    exchange_segment: str
    exchange_instrument_id: int
    trading_symbol: str
    price: Decimal


def demo_reference_prices() -> list[ReferencePrice]:
    with open(DEMO_PRICES, encoding="utf-8") as handle:
        return [
            ReferencePrice(
                exchange_segment=row["exchange_segment"],
                exchange_instrument_id=int(row["exchange_instrument_id"]),
                trading_symbol=row["trading_symbol"],
                price=Decimal(row["reference_price"]),
            )
            for row in csv.DictReader(handle)
        ]


def _demo_instruments(references: list[ReferencePrice]) -> dict[tuple[str, int], Instrument]:
    query = Q(pk__in=[])
    for ref in references:
        query |= Q(
            exchange_segment=ref.exchange_segment,
            exchange_instrument_id=ref.exchange_instrument_id,
        )
    return {
        (i.exchange_segment, i.exchange_instrument_id): i
        for i in Instrument.objects.select_related("fair_price").filter(query)
    }


def _spread_row(instrument: Instrument, mid: Decimal, ticks: int = 1) -> FairPriceInput:
    tick = instrument.tick_size
    mid = snap_down(mid, tick)
    return FairPriceInput(
        instrument_id=instrument.pk,
        buy_fair_price=mid + tick * ticks,
        sell_fair_price=max(mid - tick * ticks, tick),
        avg_fair_price=mid,
        last_traded_price=mid,
    )


@transaction.atomic
def seed_demo_data() -> DemoInfo:
    """Create what the demo needs, leaving whatever already exists alone."""
    username, password = settings.DEMO_USERNAME, settings.DEMO_PASSWORD
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User.objects.create_user(
            username=username, email=f"{username}@demo.invalid", password=password
        )
    starting_cash = Decimal(str(settings.PAPER_STARTING_CASH))
    account, _ = BrokerAccount.objects.get_or_create(
        user=user,
        account_name=DEMO_ACCOUNT_NAME,
        defaults={
            "broker": Broker.PAPER,
            "cash_available": starting_cash,
            "net_margin": starting_cash,
        },
    )
    book_for_account(account.pk)
    references = demo_reference_prices()
    instruments = _demo_instruments(references)
    if len(instruments) < len(references):
        load_bundled_instruments()
        instruments = _demo_instruments(references)
    priced = set(
        FairPrice.objects.filter(
            instrument_id__in=[i.pk for i in instruments.values()]
        ).values_list("instrument_id", flat=True)
    )
    first_prices = [
        _spread_row(instruments[key], ref.price)
        for ref in references
        if (key := (ref.exchange_segment, ref.exchange_instrument_id)) in instruments
        and instruments[key].pk not in priced
    ]
    record_fair_prices(rows=first_prices, source="demo")
    strategy, _ = Strategy.objects.get_or_create(user=user, name=DEMO_STRATEGY_NAME)
    return DemoInfo(
        username=username,
        password=password,
        user_id=user.pk,
        account_id=account.pk,
        strategy_id=strategy.pk,
        instrument_count=len(instruments),
    )


def _next_price(instrument: Instrument, reference: Decimal, current: Decimal) -> Decimal:
    tick = instrument.tick_size
    step = reference * MAX_STEP * Decimal(str(round(_rng.uniform(-1, 1), 6)))
    low = reference * (1 - MAX_DRIFT)
    high = reference * (1 + MAX_DRIFT)
    if instrument.price_band_low is not None:
        low = max(low, instrument.price_band_low + 2 * tick)
    if instrument.price_band_high is not None:
        high = min(high, instrument.price_band_high - 2 * tick)
    price = min(max(current + step, low), high)
    return max(snap_up(price, tick) if step > 0 else snap_down(price, tick), 2 * tick)


def tick_price_feed() -> int:
    """One random-walk step for every demo instrument; returns how many prices were written."""
    references = demo_reference_prices()
    instruments = _demo_instruments(references)
    rows = []
    for ref in references:
        instrument = instruments.get((ref.exchange_segment, ref.exchange_instrument_id))
        if instrument is None:
            continue
        fair = getattr(instrument, "fair_price", None)
        current = (fair.avg_fair_price if fair is not None else None) or ref.price
        rows.append(
            _spread_row(instrument, _next_price(instrument, ref.price, current), _rng.randint(1, 2))
        )
    record_fair_prices(rows=rows, source="simulated")
    return len(rows)
