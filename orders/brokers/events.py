"""What a broker tells us on its own, as it happens: the events the desk acts on at once.

Two sources produce them: the XTS interactive stream (Socket.IO, one connection per broker
session) and the paper exchange as it matches. Both speak this one shape, in our vocabulary
(the rows of `orders.brokers.base`), so one handler serves both (settings.BROKER_EVENT_HANDLER:
`monitoring.events.handle_broker_event`, which applies the rows through `orders.services.events`).
The 60-second monitoring cycle remains the safety net: an event that never arrives is
reconciled by the next sync, and an event that arrives twice or late changes nothing twice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from orders.brokers.base import BrokerOrderRow, BrokerPositionRow, BrokerTradeRow


class BrokerEventKind(enum.StrEnum):
    ORDER = "order"  # an order-book row changed (accepted, modified, filled, cancelled, ...)
    TRADE = "trade"  # one fill (a trade-book row)
    POSITION = "position"  # a position row changed
    CONNECTED = "connected"  # a stream (re)connected: the gap since the last event is unknown
    LOGOUT = "logout"  # the broker ended the session (another login with the same appKey)


@dataclass(frozen=True)
class BrokerEvent:
    """One thing a broker reported for one of our accounts."""

    account_id: int
    kind: BrokerEventKind
    source: str  # "xts-stream", "paper"
    received_at: datetime
    order: BrokerOrderRow | None = None
    trade: BrokerTradeRow | None = None
    position: BrokerPositionRow | None = None
    detail: str = ""  # for CONNECTED / LOGOUT: what the stream said
