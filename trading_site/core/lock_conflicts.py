"""MariaDB's answers to a statement that lost a lock conflict with another transaction.

A deadlock (1213) rolls the whole transaction back; a lock wait timeout (1205) the statement,
and the caller's `atomic` block the rest as the error leaves it. Either way nothing of the
transaction was written and the same work may be run again. In the broker layer too: the
paper exchange places inside the desk's transaction, so its lock conflict is the desk's."""

from __future__ import annotations

from django.db import OperationalError

LOCK_DEADLOCK = 1213
LOCK_WAIT_TIMEOUT = 1205


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether `exc` is MariaDB's deadlock or lock wait timeout."""
    return (
        isinstance(exc, OperationalError)
        and bool(exc.args)
        and exc.args[0] in (LOCK_DEADLOCK, LOCK_WAIT_TIMEOUT)
    )
