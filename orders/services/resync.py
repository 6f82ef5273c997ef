"""Read one account's broker state now and bring the legs in line (monitoring steps 1 and 3
for one account): for an action that must decide on fresh knowledge (the kill switch, a
position exit; the caller holds the account's exclusion), and for a program asking for its
orders' state (OpenAlgo's orderstatus and orderbook: the order book alone, under the
exclusion when it is free soon, else the desk's last state is answered)."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from django.db import transaction

from accounts.models import BrokerAccount
from orders.brokers.base import BrokerError, BrokerSnapshot
from orders.services.broker_calls import client_for
from orders.services.exclusion import AccountBusy, account_exclusion
from orders.services.sync import (
    MONITORING_ACTOR,
    readable_trades,
    store_broker_snapshots,
    sync_account_orders,
)

logger = logging.getLogger("orders.services")


def refresh_legs_from_broker(
    *, account: BrokerAccount, actor: str = MONITORING_ACTOR
) -> BrokerSnapshot:
    """Fetch the order book, trades, positions and balance; store what could be read; sync
    the legs from the order book when it could be read. Returns the snapshot (its `errors`
    name the reads that failed)."""
    snapshot = async_to_sync(client_for(account).snapshot)()
    store_broker_snapshots(
        account=account,
        order_book=snapshot.order_book,
        trades=readable_trades(snapshot.trades) if snapshot.trades is not None else None,
        positions=snapshot.positions,
        balance=snapshot.balance,
    )
    if snapshot.order_book is not None:
        with transaction.atomic():
            sync_account_orders(account=account, order_book=snapshot.order_book, actor=actor)
    return snapshot


# A read for a program polling its orders waits this long for a change of the account in
# progress (a cycle, an exit) before answering the desk's last state.
ORDER_BOOK_READ_WAIT_SECONDS = 2.0


def refresh_orders_from_broker(*, account: BrokerAccount, actor: str) -> list[int]:
    """The broker's order book read now and applied to the desk's legs and orders (through
    the lifecycle gate, audited), as monitoring's step 3 does, for one account: one broker
    call. Under the account's exclusion; when another change holds it for longer than
    ORDER_BOOK_READ_WAIT_SECONDS, or the broker cannot be read, the desk's state stays as
    it is (returns []): the caller answers the last known state."""
    try:
        with account_exclusion(
            account.pk, purpose="order book read", wait=ORDER_BOOK_READ_WAIT_SECONDS
        ):
            try:
                book = async_to_sync(client_for(account).order_book)()
            except BrokerError:
                logger.warning(
                    "order book unavailable; answering the desk's last state",
                    extra={"account_id": account.pk},
                )
                return []
            store_broker_snapshots(
                account=account, order_book=book, trades=None, positions=None, balance=None
            )
            with transaction.atomic():
                return sync_account_orders(account=account, order_book=book, actor=actor)
    except AccountBusy:
        return []
