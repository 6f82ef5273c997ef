"""Reads of PnL data, always scoped to one account (callers resolve it for the user)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime

from django.core.cache import cache
from django.db.models import Max, Q, QuerySet

from accounts.models import BrokerAccount
from orders.models import FairPrice
from pnl.models import PnlDaily, PnlInstrumentState, PnlLot
from trading_site.core.db_router import reporting_alias

FAIR_PRICE_FIELDS = ("buy_fair_price", "sell_fair_price", "avg_fair_price", "last_traded_price")


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
    stamp = cache.get(_verified_key(account.pk))
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
    by_segment: dict[str, list[int]] = defaultdict(list)
    for segment, instrument_id in keys:
        by_segment[segment].append(instrument_id)
    if not by_segment:
        return {}
    condition = Q()
    for segment, ids in by_segment.items():
        condition |= Q(
            instrument__exchange_segment=segment, instrument__exchange_instrument_id__in=ids
        )
    rows = FairPrice.objects.filter(condition).values(
        "instrument__exchange_segment", "instrument__exchange_instrument_id", *FAIR_PRICE_FIELDS
    )
    return {
        (row["instrument__exchange_segment"], row["instrument__exchange_instrument_id"]): {
            name: row[name] for name in FAIR_PRICE_FIELDS
        }
        for row in rows
    }
