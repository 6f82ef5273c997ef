"""Live reads of an account's books at its broker: positions, trade book, balance, and the
order book applied to the desk's orders on demand.

For the callers that must see the broker's state now rather than the last sync's snapshot:
a position target is only as good as the position it is measured from, and programs asking
for their trade book or funds expect the broker's answer (the paper exchange runs a matching
tick first). A broker that cannot be read is a BrokerUnavailableError naming the account;
nothing is guessed.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync

from accounts.models import BrokerAccount
from orders.brokers.base import BrokerBalance, BrokerError, BrokerPositionRow, BrokerTradeRow
from orders.services.broker_calls import client_for
from orders.services.sync import store_broker_snapshots, sync_account_orders
from trading_site.core.errors import BrokerUnavailableError

logger = logging.getLogger("orders.services")


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


def refresh_orders_from_broker(account: BrokerAccount, *, actor: str) -> list[int]:
    """Monitoring's order sync (step 3) now, for one account: the broker's order book read
    and applied to the desk's legs and orders (through the lifecycle gate, audited). For
    callers that answer an order's status to a program polling for it. A broker that
    cannot be read leaves the desk's state as it is (returns [])."""
    try:
        book = async_to_sync(client_for(account).order_book)()
    except BrokerError:
        logger.warning("order book unavailable; answering the desk's last state", exc_info=True)
        return []
    store_broker_snapshots(
        account=account, order_book=book, trades=None, positions=None, balance=None
    )
    return sync_account_orders(account=account, order_book=book, actor=actor)
