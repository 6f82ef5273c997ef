"""Live MTM: on every price tick (and every monitoring cycle) the accounts whose positions the
new prices move are valued again, their MTM is pushed to their owners' browsers
(`positions_update`) and kept as the intraday curve (MtmSample, one point per account and
minute, MTM_SAMPLE_RETENTION_DAYS days).

Cheap by construction: a tick costs one indexed query to find the accounts holding the
ticked instruments (none: nothing else happens), two to value their positions, one upsert
for the samples, and one message per account to users holding the instrument only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from accounts.models import BrokerAccount
from orders.models import Instrument
from orders.positions.selectors import AccountPositions, accounts_holding, position_book
from pnl.models import MtmSample
from trading_site.core import realtime
from trading_site.core.market_hours import MARKET_TZ

logger = logging.getLogger(__name__)


def sample_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def positions_update_message(account: AccountPositions, *, at: datetime) -> dict:
    return {
        "type": realtime.POSITIONS_UPDATE,
        "account_id": account.account_id,
        "money": account.money,
        "mtm": account.mtm,
        "positions": [
            {"key": row.key, "net_qty": row.net_qty, "ltp": row.ltp, "mtm": row.mtm}
            for row in account.rows
        ],
        "at": at.isoformat(),
    }


def record_samples(accounts: Iterable[AccountPositions], *, at: datetime) -> int:
    """Upsert this minute's point of each account (the last value in a minute wins)."""
    minute = sample_minute(at)
    day = timezone.localtime(at, MARKET_TZ).date()
    rows = [
        MtmSample(account_id=a.account_id, trading_date=day, minute=minute, mtm=a.mtm)
        for a in accounts
    ]
    if not rows:
        return 0
    conflict_target: dict[str, Any] = (
        {"unique_fields": ["account", "minute"]}
        if connection.features.supports_update_conflicts_with_target
        else {}
    )
    MtmSample.objects.bulk_create(
        rows, update_conflicts=True, update_fields=["mtm", "updated_at"], **conflict_target
    )
    _prune_once_a_day([a.account_id for a in accounts], day=day)
    return len(rows)


def _prune_once_a_day(account_ids: list[int], *, day) -> None:
    """Bounded storage: the first sample of a day deletes the account's points older than
    the retention (once per account and day, remembered in the cache)."""
    keep_from = day - timedelta(days=int(settings.MTM_SAMPLE_RETENTION_DAYS))
    due = [pk for pk in account_ids if cache.add(f"mtm:pruned:{pk}:{day}", 1, timeout=86400)]
    if due:
        MtmSample.objects.filter(account_id__in=due, trading_date__lt=keep_from).delete()


def revalue_and_push(accounts: list[BrokerAccount], *, at: datetime | None = None) -> int:
    """Value these accounts' positions now, keep the samples, push positions_update."""
    if not accounts:
        return 0
    at = at or timezone.now()
    book = position_book(accounts=accounts)
    # An account without any position has no curve to draw: no point, no message.
    record_samples([a for a in book.accounts if a.rows], at=at)
    owners = {account.pk: account.user_id for account in accounts}
    realtime.notify_users(
        [
            (owners[a.account_id], positions_update_message(a, at=at))
            for a in book.accounts
            if a.rows
        ]
    )
    return len(book.accounts)


def on_fair_prices_recorded(sender, *, instrument_ids: list[int], **kwargs) -> int:
    """The fair_prices_recorded receiver (connected in pnl.apps)."""
    keys = list(
        Instrument.objects.filter(pk__in=instrument_ids).values_list(
            "exchange_segment", "exchange_instrument_id"
        )
    )
    return revalue_and_push(accounts_holding(keys))


def record_cycle_samples(accounts: list[BrokerAccount]) -> None:
    """The point of positions just synced (the monitoring cycle, a broker's position event):
    never raises, a failure is logged (the curve misses a point, the caller goes on)."""
    try:
        revalue_and_push(accounts)
    except Exception:
        logger.exception("mtm samples failed", extra={"accounts": [a.pk for a in accounts]})
