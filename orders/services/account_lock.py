"""The order in which a transaction locks an account's rows: the account row first.

Inside one transaction, an account's rows are locked in this order, so that no two
transactions of one account each hold what the other waits for (MariaDB's error 1213):

1. the account row (`broker_accounts`);
2. the account's own per-account rows: the day's counter (`daily_counters`), the paper
   book (`paper_books`), its PnL rows;
3. its orders and order legs (legs in id order: `orders.services.lifecycle.lock_legs`).

Every row that references the account (an audit row, a new leg, a trade, a lot) takes the
account row in share mode when it is inserted (its foreign key check): a writer of orders or
legs touches the account row whether it names it or not. What each transaction does:

- the PnL (`pnl.services.compute_account_pnl`): the account row FOR UPDATE, first (it
  serialises PnL runs and writes the MTM), then lots (their legs in share mode) and the
  orders' pnl;
- the sync (`orders.services.sync.sync_account_orders`, monitoring step 3 and the resyncs):
  the account row FOR UPDATE, first (it writes the synced digests at the end), then the legs
  and the orders (roll-up, fair prices). It used to take the account row last, after the
  orders: against a PnL run holding the account row and waiting for one of those orders,
  that was the deadlock;
- a broker event's apply run (`orders.services.events.apply_broker_events`): the account row
  in share mode, first, then the legs it names and their orders;
- placement's write-ahead (`orders.services.placement.write_ahead`): the account row in
  share mode, first (the kill switch's UPDATE of it waits: `trading_lock.refuse_if_locked`),
  then the day's counter, then its own new rows. In share mode, not FOR UPDATE: protection
  takes the counter and then reaches the account row through its new legs' foreign key;
- the trading lock (`trading_lock.lock_trading` / `unlock_trading`): the account row FOR
  UPDATE, first, and no order or leg;
- the snapshots (`sync.store_broker_snapshots`): the account row (its UPDATE), first, then
  the broker's rows (an event's apply run writes them too, after its share lock); no order
  or leg;
- protection, the recording of a placement's answers (with the paper exchange: its book
  first), modify and cancel (`lifecycle.apply_accepted_change`), the kill switch's
  cancels, archiving and exits: their order or legs first, then the account row in share
  mode only (foreign keys), never FOR UPDATE. Share-mode holders never wait for each other
  on the account row, nor for the write-ahead's share lock; they could wait for a PnL run
  or a sync that holds it FOR UPDATE and wants their rows, which is why every PnL run and
  every sync holds the account's exclusion (`orders.services.exclusion`), as these writers
  do: the exclusion keeps them apart, not this order. (Taking the account row first here
  too would cost each of them a query on the hottest paths.)

A transaction that still loses a lock conflict (1213 deadlock, 1205 lock wait timeout) is
rolled back whole: nothing of it was written. Where running it again is idempotent (a broker
event's apply run: cumulative fills, trades by execution id; the PnL: a recompute from the
stored rows), `conflicts_are_busy` turns the conflict into `RowsBusy`, which the broker
event dispatcher already tries again, ahead of the account's later events, like a busy
exclusion: the event is not lost.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.db import OperationalError, connection, transaction

from trading_site.core.errors import Busy
from trading_site.core.lock_conflicts import is_lock_conflict

_LOCK_MODE = {True: "FOR UPDATE", False: "LOCK IN SHARE MODE"}


def lock_account_row(
    account_id: int, *, exclusive: bool, columns: Sequence[str] = ("id",)
) -> Sequence[tuple] | None:
    """The account row locked till the end of the caller's transaction (the first lock of
    its transaction: see the module docstring): FOR UPDATE when the transaction writes the
    row, in share mode otherwise. Returns the row's `columns` (our own column names) as read
    under the lock, as the driver hands them (no row: []). None on SQLite, whose write
    transactions lock the whole database: no row lock, nothing read."""
    if connection.vendor != "mysql":
        return None
    selected = ", ".join(f"`{column}`" for column in columns)
    sql = f"SELECT {selected} FROM `broker_accounts` WHERE `id` = %s {_LOCK_MODE[exclusive]}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [int(account_id)])
        return cursor.fetchall()


class RowsBusy(Busy):
    """The transaction lost a lock conflict with another one and was rolled back whole:
    nothing was done, and the same work may simply be tried again."""

    default_message = "The account's rows were busy with another change; try again"


@contextmanager
def conflicts_are_busy(account_id: int, *, work: str) -> Iterator[None]:
    """Around a transaction whose re-run is idempotent: a lock conflict that rolled it back
    whole raises RowsBusy. Nested in a caller's transaction, the conflict is the caller's
    (its whole transaction was rolled back, not only this part): raised as it is."""
    outermost = not transaction.get_connection().in_atomic_block
    try:
        yield
    except OperationalError as exc:
        if outermost and is_lock_conflict(exc):
            raise RowsBusy(details={"account_id": account_id, "work": work}) from exc
        raise
