"""Reads of PnL data, always scoped to one account (callers resolve it for the user)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Exists, Max, OuterRef, QuerySet
from django.utils import timezone

from accounts.models import BrokerAccount
from orders.domain.ticket import instrument_class
from orders.market.selectors import instruments_filter
from orders.models import BrokerOrder, BrokerTrade, FairPrice, Instrument
from pnl import charges as charges_mod
from pnl import curve as curve_mod
from pnl.models import BrokeragePlanSetting, MtmSample, PnlDaily, PnlInstrumentState, PnlLot
from trading_site.core.db_router import reporting_alias
from trading_site.core.market_hours import MARKET_TZ

logger = logging.getLogger(__name__)

# The keys of fair_prices_by_instrument's dicts: the model's four prices.
FAIR_PRICE_FIELDS = FairPrice.PRICE_FIELDS


def pnl_lots_for(*, account: BrokerAccount) -> QuerySet[PnlLot]:
    """Matched and open lots, per instrument in entry order (matched before open)."""
    return PnlLot.objects.filter(account=account).order_by(
        "exchange_segment", "exchange_instrument_id", "kind", "entry_time", "id"
    )


def pnl_days_for(*, account: BrokerAccount, since: date | None = None) -> QuerySet[PnlDaily]:
    """Daily history: a reporting read, served by the replica when one is configured."""
    days = (
        PnlDaily.objects.using(reporting_alias()).filter(account=account).order_by("trading_date")
    )
    return days.filter(trading_date__gte=since) if since else days


def pnl_day_for(*, account: BrokerAccount, trading_date: date) -> PnlDaily | None:
    return PnlDaily.objects.filter(account=account, trading_date=trading_date).first()


def instrument_states_for(*, account: BrokerAccount) -> QuerySet[PnlInstrumentState]:
    return PnlInstrumentState.objects.filter(account=account).order_by(
        "exchange_segment", "exchange_instrument_id"
    )


def last_computed_at(*, account: BrokerAccount) -> datetime | None:
    """When the account's PnL was last computed (every run stamps every instrument state)."""
    return PnlInstrumentState.objects.filter(account=account).aggregate(at=Max("computed_at"))["at"]


def _verified_key(account_id: int) -> str:
    return f"pnl:verified:{account_id}"


def mark_pnl_verified(*, account: BrokerAccount, at: datetime) -> None:
    """Record that the stored PnL was found still right at `at` without recomputing it (the
    monitoring loop's unchanged-inputs path)."""
    cache.set(_verified_key(account.pk), at.timestamp(), timeout=24 * 3600)


def pnl_verified_at(*, account: BrokerAccount) -> datetime | None:
    """None when the cache is down too (not vouched for: the read recomputes)."""
    try:
        stamp = cache.get(_verified_key(account.pk))
    except Exception:  # a cache outage costs the read a recompute; it must not break it
        logger.warning("cache unavailable; the stored PnL is not vouched for", exc_info=True)
        return None
    return datetime.fromtimestamp(stamp, UTC) if stamp is not None else None


def pnl_is_stale(*, account: BrokerAccount) -> bool:
    """True when nothing is stored yet, or the stored result is older than the last broker
    sync and was not verified unchanged since."""
    computed = last_computed_at(account=account)
    if computed is None:
        return True
    verified = pnl_verified_at(account=account)
    fresh_as_of = max(computed, verified) if verified else computed
    return account.last_synced_at is not None and fresh_as_of < account.last_synced_at


def fair_prices_by_instrument(*, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], dict]:
    """(segment, instrument id) -> the instrument's fair prices and LTP (absent: no row)."""
    keys = set(keys)
    if not keys:
        return {}
    rows = FairPrice.objects.filter(instruments_filter(keys, via="instrument__")).values(
        "instrument__exchange_segment", "instrument__exchange_instrument_id", *FAIR_PRICE_FIELDS
    )
    return {
        (row["instrument__exchange_segment"], row["instrument__exchange_instrument_id"]): {
            name: row[name] for name in FAIR_PRICE_FIELDS
        }
        for row in rows
    }


@dataclass(frozen=True)
class InstrumentTerms:
    """What turns an instrument's fills into rupees: its contract multiplier (rupees per unit
    of quantity per rupee of price, from the instrument master) and its latest marks (None:
    no fair price row)."""

    multiplier: int
    buy_fair_price: Decimal | None
    sell_fair_price: Decimal | None
    avg_fair_price: Decimal | None
    last_traded_price: Decimal | None


def instrument_terms(*, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], InstrumentTerms]:
    """(segment, instrument id) -> the instrument's multiplier and fair prices, in one query
    (absent: not in the instrument master; the caller values it at multiplier 1, unmarked)."""
    keys = set(keys)
    if not keys:
        return {}
    rows = Instrument.objects.filter(instruments_filter(keys)).values(
        "exchange_segment",
        "exchange_instrument_id",
        "multiplier",
        *(f"fair_price__{name}" for name in FAIR_PRICE_FIELDS),
    )
    return {
        (row["exchange_segment"], row["exchange_instrument_id"]): InstrumentTerms(
            multiplier=row["multiplier"],
            **{name: row[f"fair_price__{name}"] for name in FAIR_PRICE_FIELDS},
        )
        for row in rows
    }


def fair_prices_for_rows(rows: Iterable[Any]) -> dict[tuple[str, int], dict]:
    """`fair_prices_by_instrument` for the instruments some rows are on (lots, instrument
    states: anything with exchange_segment and exchange_instrument_id)."""
    return fair_prices_by_instrument(
        keys={(row.exchange_segment, row.exchange_instrument_id) for row in rows}
    )


def accounts_trading_multiplier_contracts() -> QuerySet[BrokerAccount]:
    """The accounts with a fill of an instrument whose contract multiplier is not 1 (an MCX
    x10 or x100 contract), in their trade book or, for an account without one, their order
    book: those whose past PnL the multiplier changes."""
    contract = Instrument.objects.filter(
        exchange_segment=OuterRef("exchange_segment"),
        exchange_instrument_id=OuterRef("exchange_instrument_id"),
    ).exclude(multiplier=1)
    traded = BrokerTrade.objects.filter(account=OuterRef("pk"), quantity__gt=0)
    ordered = BrokerOrder.objects.filter(account=OuterRef("pk"), cumulative_quantity__gt=0)
    return BrokerAccount.objects.filter(
        Exists(traded.filter(Exists(contract))) | Exists(ordered.filter(Exists(contract)))
    ).order_by("pk")


# ---- the intraday MTM curve ------------------------------------------------------------------


def mtm_curve(*, accounts: Iterable[BrokerAccount], day: date) -> list[curve_mod.Point]:
    """The day's MTM points of one account, or of several summed minute by minute (the
    caller never mixes paper and live accounts)."""
    curves: dict[int, list[curve_mod.Point]] = defaultdict(list)
    ids = [account.pk for account in accounts]
    rows = (
        MtmSample.objects.filter(account_id__in=ids, trading_date=day)
        .order_by("minute")
        .values_list("account_id", "minute", "mtm")
    )
    for account_id, minute, mtm in rows:
        curves[account_id].append((minute, mtm))
    if len(curves) <= 1:
        return next(iter(curves.values()), [])
    return curve_mod.summed_curve(curves)


def sample_days(*, accounts: Iterable[BrokerAccount], limit: int = 30) -> list[date]:
    """The latest days with curve points, newest first."""
    return list(
        MtmSample.objects.filter(account__in=list(accounts))
        .values_list("trading_date", flat=True)
        .distinct()
        .order_by("-trading_date")[:limit]
    )


# ---- estimated charges ----------------------------------------------------------------------


def charge_rates() -> charges_mod.ChargeRates:
    return charges_mod.rates_with(settings.CHARGE_RATES)


def brokerage_plan_for(account: BrokerAccount) -> charges_mod.BrokeragePlan:
    row = BrokeragePlanSetting.objects.filter(account=account).first()
    if row is None:
        return charges_mod.BrokeragePlan()
    return charges_mod.BrokeragePlan(
        mode=row.mode,
        flat_per_order=row.flat_per_order,
        percent=row.percent,
        cap_per_order=row.cap_per_order,
        delivery_free=row.delivery_free,
    )


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=MARKET_TZ)
    return start, start + timedelta(days=1)


def executed_orders_by_day(
    *, account: BrokerAccount, first: date, last: date
) -> dict[date, list[charges_mod.ExecutedOrder]]:
    """The account's orders that traded on each day from `first` to `last` (Asia/Kolkata),
    each with its turnover: from the trade book, or (an account whose broker reports no
    trades) from the order book. One query for the fills, one for their instruments."""
    start, _ = _day_bounds(first)
    _, end = _day_bounds(last)
    fills: list[tuple[Any, ...]] = [
        (timezone.localtime(at, MARKET_TZ).date(), *rest)
        for at, *rest in BrokerTrade.objects.filter(
            account=account, traded_at__gte=start, traded_at__lt=end
        )
        .order_by("id")
        .values_list(
            "traded_at",
            "broker_order_id",
            "exchange_segment",
            "exchange_instrument_id",
            "side",
            "product_type",
            "quantity",
            "price",
        )
    ]
    if not fills and not BrokerTrade.objects.filter(account=account).exists():
        fills = [
            (timezone.localtime(at, MARKET_TZ).date(), *rest)
            for at, *rest in BrokerOrder.objects.filter(
                account=account,
                cumulative_quantity__gt=0,
                average_traded_price__isnull=False,
                exchange_transact_time__gte=start,
                exchange_transact_time__lt=end,
            ).values_list(
                "exchange_transact_time",
                "broker_order_id",
                "exchange_segment",
                "exchange_instrument_id",
                "side",
                "product_type",
                "cumulative_quantity",
                "average_traded_price",
            )
        ]
    instruments = _instruments({(fill[2], fill[3]) for fill in fills})
    orders: dict[tuple[date, str], dict] = {}
    for day, order_id, segment, instrument_id, side, product, quantity, price in fills:
        instrument = instruments.get((segment, instrument_id))
        multiplier = instrument.multiplier if instrument is not None else 1
        entry = orders.setdefault(
            (day, order_id),
            {
                "instrument_class": instrument_class(
                    segment=segment,
                    instrument_type=instrument.instrument_type if instrument else "",
                    series=instrument.series if instrument else "",
                    option_type=instrument.option_type if instrument else "",
                ),
                "exchange": "BSE" if segment.startswith("BSE") else "NSE",
                "side": side,
                "product": product or "MIS",
                "turnover": Decimal("0"),
            },
        )
        entry["turnover"] += price * quantity * multiplier
    by_day: dict[date, list[charges_mod.ExecutedOrder]] = defaultdict(list)
    for (day, _order_id), entry in orders.items():
        by_day[day].append(charges_mod.ExecutedOrder(**entry))
    return dict(by_day)


def executed_orders(*, account: BrokerAccount, day: date) -> list[charges_mod.ExecutedOrder]:
    return executed_orders_by_day(account=account, first=day, last=day).get(day, [])


def _instruments(keys: set[tuple[str, int]]) -> dict[tuple[str, int], Instrument]:
    if not keys:
        return {}
    return {
        (i.exchange_segment, i.exchange_instrument_id): i
        for i in Instrument.objects.filter(instruments_filter(keys))
    }


def charges_by_day(
    *, account: BrokerAccount, first: date, last: date
) -> dict[date, charges_mod.ChargesSummary]:
    plan, rates = brokerage_plan_for(account), charge_rates()
    return {
        day: charges_mod.total_charges(orders, plan=plan, rates=rates)
        for day, orders in executed_orders_by_day(account=account, first=first, last=last).items()
    }


def charges_for_day(*, account: BrokerAccount, day: date) -> charges_mod.ChargesSummary:
    return charges_mod.total_charges(
        executed_orders(account=account, day=day),
        plan=brokerage_plan_for(account),
        rates=charge_rates(),
    )


# ---- one day of one account, or of one kind of money ------------------------------------------


@dataclass
class DayReport:
    """The intraday curve with its drawdown, and gross PnL, estimated charges and net PnL of
    some accounts on one trading day (never paper and live together)."""

    day: date
    account_ids: list[int]
    points: list[curve_mod.Point]
    drawdown: curve_mod.Drawdown
    gross: Decimal
    charges: charges_mod.ChargesSummary

    @property
    def net(self) -> Decimal:
        return self.gross - self.charges.charges.total


def day_report(*, accounts: list[BrokerAccount], day: date) -> DayReport:
    points = mtm_curve(accounts=accounts, day=day)
    gross = Decimal("0")
    for row in PnlDaily.objects.filter(account__in=accounts, trading_date=day):
        gross += row.realized + row.unrealized
    total = charges_mod.Charges()
    counted = skipped = 0
    for account in accounts:
        summary = charges_for_day(account=account, day=day)
        total += summary.charges
        counted += summary.orders
        skipped += summary.not_estimated
    return DayReport(
        day=day,
        account_ids=[a.pk for a in accounts],
        points=points,
        drawdown=curve_mod.max_drawdown([value for _minute, value in points]),
        gross=gross,
        charges=charges_mod.ChargesSummary(charges=total, orders=counted, not_estimated=skipped),
    )
