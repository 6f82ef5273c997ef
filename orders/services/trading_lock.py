"""An account's trading lock: the kill switch sets it, only the trader lifts it.

While an account is locked, every path that opens a position refuses with TRADING_LOCKED:
single, bracket and batch orders (API and web), scheduled orders and regeneration, all of
which place through orders.services.placement, and the OpenAlgo API's placements and
position changes (placeorder, placesmartorder, basketorder, splitorder, the strategy
webhook: orders.services.position_changes.change_position refuses a change as a whole). What closes or protects existing positions
still goes out: the kill switch's own cancellations and square-off exits, cancellations the
trader asks for, and the protective legs of positions already held.

The lock cannot be slipped past by an order already on its way:
- placement refuses before anything is written (`ensure_trading_allowed`);
- the write-ahead transaction locks the account row (in share mode: `refuse_if_locked`),
  and `lock_trading` sets the lock with an UPDATE of that row, so once the lock commits no
  new order can be written;
- an order written just before the lock is checked again right before its broker call
  (`is_trading_locked`) and recorded as not sent (REJECTED "not sent: trading is locked").
Lock and unlock are audited (OrderEvent TRADING_LOCKED / TRADING_UNLOCKED on the account).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from django.db import transaction
from django.utils import timezone

from accounts.models import BrokerAccount
from orders.domain.vocabulary import EventKind
from orders.services.account_lock import lock_account_row
from orders.services.audit import record_account_event
from trading_site.core.errors import TradingLocked
from trading_site.core.prepared import PreparedRows

LOCKED_REASON = "trading is locked on this account by the kill switch"


def _locked_error(account_id: int, locked_at: datetime | None) -> TradingLocked:
    return TradingLocked(
        details={
            "account_id": account_id,
            "trading_locked_at": locked_at.isoformat() if locked_at else None,
            "sent": False,
        }
    )


def ensure_trading_allowed(account: BrokerAccount) -> None:
    """Refuse a new order on a locked account before anything is written."""
    if account.trading_locked_at is not None:
        raise _locked_error(account.pk, account.trading_locked_at)


def ensure_trading_allowed_now(account_id: int) -> None:
    """As `ensure_trading_allowed`, from the account row as it is now (for a change decided
    on a live read of the position, which may come a while after the account was loaded)."""
    for (locked_at,) in _LOCKED_AT(account_id=account_id):
        if locked_at is not None:
            raise _locked_error(account_id, locked_at)


def refuse_if_locked(account_id: int) -> None:
    """Inside the write-ahead transaction, first: lock the account row and refuse if trading
    is locked (the kill switch's UPDATE waits for this transaction, and this one for it).
    In share mode, not FOR UPDATE: the write-ahead then takes the day's counter, which
    protection holds while it reaches the account row in share mode through its new legs
    (the lock order: orders.services.account_lock)."""
    for (locked_at,) in _locked_at_in_share_mode(account_id):
        if locked_at is not None:
            raise _locked_error(account_id, locked_at)


def is_trading_locked(account_id: int) -> bool:
    return any(locked_at is not None for (locked_at,) in _LOCKED_AT(account_id=account_id))


class _LockedAt(NamedTuple):
    trading_locked_at: datetime | None


# Read by every placement (twice) and every change: compiled once (`PreparedRows`).
_LOCKED_AT = PreparedRows(
    _LockedAt,
    lambda *, account_id: BrokerAccount.objects.filter(pk=account_id).values_list(
        "trading_locked_at"
    ),
)


def _locked_at_in_share_mode(account_id: int) -> list[_LockedAt]:
    """`_LOCKED_AT`, the row locked in share mode till commit (`lock_account_row`; the ORM
    has no share mode). SQLite (whose write transactions lock the whole database) reads it
    plainly."""
    rows = lock_account_row(account_id, exclusive=False, columns=("trading_locked_at",))
    if rows is None:
        return _LOCKED_AT(account_id=account_id)
    # A raw read's datetime comes back naive, in the database's time zone (UTC).
    return [
        _LockedAt(timezone.make_aware(at, UTC) if at is not None and timezone.is_naive(at) else at)
        for (at,) in rows
    ]


def _locked_at_for_update(account: BrokerAccount) -> datetime | None:
    """When the account's trading was locked (None: it is not), its row locked till commit."""
    return (
        BrokerAccount.objects.select_for_update()
        .filter(pk=account.pk)
        .values_list("trading_locked_at", flat=True)
        .get()
    )


def lock_trading(*, account: BrokerAccount, actor: str) -> bool:
    """Lock the account for new orders (the kill switch, first thing). Returns whether it
    was unlocked before; a second kill switch keeps the first lock's time and is audited."""
    now = timezone.now()
    with transaction.atomic():
        locked_at = _locked_at_for_update(account)
        if locked_at is None:
            BrokerAccount.objects.filter(pk=account.pk).update(
                trading_locked_at=now, trading_locked_by=actor[:64], updated_at=now
            )
            message = "kill switch: trading locked until the trader re-enables it"
        else:
            message = "kill switch fired again: trading stays locked"
        record_account_event(
            account,
            kind=EventKind.TRADING_LOCKED,
            actor=actor,
            message=message,
            before={"trading_locked": locked_at is not None},
            after={"trading_locked": True},
        )
    account.trading_locked_at = locked_at or now
    if locked_at is None:
        account.trading_locked_by = actor[:64]
    return locked_at is None


def unlock_trading(*, account: BrokerAccount, actor: str) -> bool:
    """The trader re-enables trading. Returns whether the account was locked (unlocking
    an unlocked account changes and records nothing)."""
    now = timezone.now()
    with transaction.atomic():
        locked_at = _locked_at_for_update(account)
        if locked_at is None:
            return False
        BrokerAccount.objects.filter(pk=account.pk).update(
            trading_locked_at=None, trading_locked_by="", updated_at=now
        )
        record_account_event(
            account,
            kind=EventKind.TRADING_UNLOCKED,
            actor=actor,
            message="trading re-enabled by the trader",
            before={"trading_locked": True, "trading_locked_at": locked_at.isoformat()},
            after={"trading_locked": False},
        )
    account.trading_locked_at = None
    account.trading_locked_by = ""
    return True
