"""Read one account's broker state now and bring the legs in line (monitoring steps 1 and 3
for one account), for an action that must decide on fresh knowledge (the kill switch).
The caller holds the account's exclusion."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from django.db import transaction

from accounts.models import BrokerAccount
from orders.brokers.base import BrokerSnapshot
from orders.services.broker_calls import client_for
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
