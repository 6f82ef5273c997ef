"""One account's exclusion: whoever changes an account's legs holds it.

The monitoring cycle (steps 1-9 of the account), the broker-event handler, a resync, the
recording of a placement's answer, modify and cancel, the kill switch and protection all take
the account's lease (`trading_site.core.leases`: Redis with a heartbeat in the full stack, a
process-local lock when embedded), so they act one after the other on what the one before
left, never on a picture the other is changing meanwhile (two cycles cancelling the same
target twice, an event's protection racing the cycle's).

Why a lease and not only a database row lock: the work it covers includes broker calls of
several seconds, and the write-ahead rule (an order is committed before the broker is
called) forbids holding a transaction open across them. The database still fences the
writes: every writer locks the leg rows it changes (`orders.services.lifecycle.lock_legs`,
the sync's SELECT ... FOR UPDATE) and then calls `fence`, which raises when this holder's
lease ended meanwhile (a stall past its ttl, Redis losing it), so a stale holder rolls back
instead of writing over the next holder's work; its check and its writes are atomic with
respect to every other writer of those rows.

Never wait for the exclusion inside a transaction: the holder may be waiting for a row lock
that transaction holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager

from django.conf import settings

from trading_site.core import leases
from trading_site.core.errors import Busy

logger = logging.getLogger("orders.exclusion")


class AccountBusy(Busy):
    """Another change of the account (the monitoring cycle, another request, a broker event)
    did not finish within the wait: nothing was done, try again."""

    default_message = "The account is busy with another change; try again in a few seconds"


class ExclusionLost(Busy):
    """This holder's exclusion ended while it worked (a stall past its ttl, Redis losing
    it): it stops, its transaction rolls back, and the work may be tried again, as after
    AccountBusy (a broker event is retried; the API answers 409)."""

    default_message = (
        "The account's exclusion ended before this change was recorded (another change may be "
        "at work); nothing of it was recorded, and the next sync shows what the broker did: try "
        "again in a few seconds"
    )


def lease_name(account_id: int) -> str:
    return f"account:{int(account_id)}"


def lease_ttl() -> float:
    return float(getattr(settings, "ACCOUNT_LOCK_TTL_SECONDS", 15))


def default_wait() -> float:
    return float(getattr(settings, "ACCOUNT_LOCK_WAIT_SECONDS", 10))


@contextmanager
def account_exclusion(
    account_id: int, *, purpose: str, wait: float | None = None, required: bool = True
) -> Iterator[leases.Lease | None]:
    """Hold the account's exclusion for the block. When it is not free within `wait`
    seconds: AccountBusy, or (`required=False`, for work that must happen anyway, such as
    recording an answer the broker already gave) the block runs without it (logged); the
    row locks keep that work's writes atomic."""
    try:
        lease = leases.acquire(
            lease_name(account_id),
            ttl=lease_ttl(),
            wait=default_wait() if wait is None else wait,
        )
    except leases.LeaseBusy:
        if required:
            raise AccountBusy(details={"account_id": account_id}) from None
        logger.warning(
            "account busy: %s goes ahead without the exclusion",
            purpose,
            extra={"account_id": account_id},
        )
        yield None
        return
    try:
        yield lease
    finally:
        leases.release(lease)


@contextmanager
def accounts_exclusion(
    account_ids: Iterable[int], *, purpose: str, wait: float | None = None
) -> Iterator[tuple[list[int], list[int]]]:
    """Hold the exclusion of several accounts (taken in id order: two holders of several
    never deadlock). Yields (held, busy): the accounts held, and those not free in time."""
    held: list[int] = []
    busy: list[int] = []
    with ExitStack() as stack:
        for account_id in sorted(set(int(a) for a in account_ids)):
            try:
                stack.enter_context(account_exclusion(account_id, purpose=purpose, wait=wait))
                held.append(account_id)
            except AccountBusy:
                busy.append(account_id)
        yield held, busy


def holds(account_id: int) -> bool:
    """Whether this thread holds the account's exclusion."""
    return leases.held_here(lease_name(account_id)) is not None


def fence(account_id: int) -> None:
    """Call after locking the rows about to change: raises ExclusionLost when this thread
    held the account's exclusion and it ended meanwhile (see the module docstring)."""
    try:
        leases.check(lease_name(account_id))
    except leases.LeaseLost as lost:
        raise ExclusionLost(details={"account_id": account_id, "reason": str(lost)}) from None
