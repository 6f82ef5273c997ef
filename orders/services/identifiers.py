"""Taking order identifiers: the per-account daily counter (the format is orders.domain.identifiers)."""

from __future__ import annotations

from datetime import date

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from orders.domain.identifiers import format_identifier
from orders.models import DailyCounter

# (account_id, trading_date) counter rows this process has seen committed: placements skip
# the existence check after the first one of the day.
_known_counters: set[tuple[int, date]] = set()


def ensure_daily_counter(*, account_id: int, trading_date: date | None = None) -> None:
    """Create the account's counter row for the day, in its own short statement, before any
    transaction that takes numbers. Concurrent first INSERTs of one unique key inside longer
    transactions deadlock on InnoDB (each holds a shared lock on the duplicate and waits for
    the other); an autocommit INSERT IGNORE holds nothing afterwards."""
    trading_date = trading_date or timezone.localdate()
    key = (account_id, trading_date)
    if key in _known_counters:
        return
    if not DailyCounter.objects.filter(account_id=account_id, trading_date=trading_date).exists():
        DailyCounter.objects.bulk_create(
            [DailyCounter(account_id=account_id, trading_date=trading_date, last_value=0)],
            ignore_conflicts=True,
        )
    if not transaction.get_connection().in_atomic_block:
        # Committed: later calls of this process skip the check. Should the row ever be
        # missing anyway (a rolled-back test), reserve_sequence still creates it.
        if len(_known_counters) > 100_000:
            _known_counters.clear()
        _known_counters.add(key)


def reserve_sequence(*, account_id: int, count: int = 1, trading_date: date | None = None) -> int:
    """Atomically take `count` consecutive numbers from the account's counter for the day and
    return the first. The UPDATE ... SET last_value = last_value + n row lock serialises
    concurrent callers in every process (MariaDB and SQLite alike); the read that follows in
    the same transaction sees our own increment, so nobody else can hold the same numbers.
    Call `ensure_daily_counter` before opening a transaction around this."""
    if count < 1:
        raise ValueError("count must be at least 1")
    trading_date = trading_date or timezone.localdate()
    if not transaction.get_connection().in_atomic_block:
        ensure_daily_counter(account_id=account_id, trading_date=trading_date)
    connection = transaction.get_connection()
    if connection.vendor == "mysql":
        # One round trip: LAST_INSERT_ID(expr) hands the new value back in the UPDATE's own
        # answer (read from the connection, no SELECT); the row lock serialises as above.
        # Plain SQL: it runs on every placement, and the ORM's update cost more than the query.
        with transaction.atomic(savepoint=False), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE daily_counters SET last_value = LAST_INSERT_ID(last_value + %s) "
                "WHERE account_id = %s AND trading_date = %s",
                [count, account_id, trading_date],
            )
            if cursor.rowcount:
                return connection.connection.insert_id() - count + 1
    # Built here, not above: a queryset costs more Python than the statement it replaces.
    counters = DailyCounter.objects.filter(account_id=account_id, trading_date=trading_date)
    # No savepoint: inside the caller's transaction the increment commits or rolls back with it.
    with transaction.atomic(savepoint=False):
        if not counters.update(last_value=F("last_value") + count):
            try:
                with transaction.atomic():
                    DailyCounter.objects.create(
                        account_id=account_id, trading_date=trading_date, last_value=count
                    )
                return 1
            except IntegrityError:
                # Another process created today's row between our UPDATE and INSERT.
                counters.update(last_value=F("last_value") + count)
        last_value = counters.values_list("last_value", flat=True).get()
    return last_value - count + 1


def next_unique_identifiers(
    *, account_id: int, count: int, trading_date: date | None = None
) -> list[str]:
    trading_date = trading_date or timezone.localdate()
    first = reserve_sequence(account_id=account_id, count=count, trading_date=trading_date)
    return [
        format_identifier(account_id=account_id, trading_date=trading_date, sequence=seq)
        for seq in range(first, first + count)
    ]


def next_unique_identifier(*, account_id: int, trading_date: date | None = None) -> str:
    return next_unique_identifiers(account_id=account_id, count=1, trading_date=trading_date)[0]
