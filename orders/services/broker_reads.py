"""Live reads of an account's books at its broker: positions, trade book, balance (the order
book applied to the desk's orders on demand is orders.services.resync's).

For the callers that must see the broker's state now rather than the last sync's snapshot:
a position target is only as good as the position it is measured from, and programs asking
for their trade book or funds expect the broker's answer (the paper exchange runs a matching
tick first). A broker that cannot be read is a BrokerUnavailableError naming the account;
nothing is guessed.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync

from accounts.models import BrokerAccount
from orders.brokers.base import BrokerBalance, BrokerError, BrokerPositionRow, BrokerTradeRow
from orders.services.broker_calls import client_for
from trading_site.core.errors import BrokerUnavailableError


def _unavailable(account: BrokerAccount, what: str, exc: BrokerError) -> BrokerUnavailableError:
    return BrokerUnavailableError(
        f"The broker's {what} could not be read: {exc.message}",
        details={"account_id": account.pk},
    )


def read_positions(account: BrokerAccount) -> list[BrokerPositionRow]:
    try:
        return async_to_sync(client_for(account).positions)()
    except BrokerError as exc:
        raise _unavailable(account, "positions", exc) from exc


def read_trade_book(account: BrokerAccount) -> list[BrokerTradeRow]:
    try:
        return async_to_sync(client_for(account).trade_book)()
    except BrokerError as exc:
        raise _unavailable(account, "trade book", exc) from exc


def read_balance(account: BrokerAccount) -> BrokerBalance | None:
    """None when the login has no balance to read (an XTS dealer login)."""
    try:
        return async_to_sync(client_for(account).balance)()
    except BrokerError as exc:
        raise _unavailable(account, "balance", exc) from exc
