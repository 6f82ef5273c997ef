"""The one place that names WebSocket groups and message types, and sends to a user.

Services call `notify_user_on_commit(user_id, message)` so a message is only sent once the
change it describes is committed; the consumer (monitoring.consumers) forwards group
messages to every open connection of the user.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

logger = logging.getLogger(__name__)

# Server -> client message types (SPEC 9).
CONNECTION_ESTABLISHED = "connection_established"
MONITORING_ERRORS = "monitoring_errors"
ORDER_UPDATE = "order_update"
PNL_UPDATE = "pnl_update"
CYCLE_COMPLETE = "cycle_complete"
MARKET_CLOSED = "market_closed"
PONG = "pong"
ERROR = "error"

# The channel-layer event type the consumer handles (method `forward`).
FORWARD_EVENT = "forward"


def user_group(user_id: int) -> str:
    return f"user.{int(user_id)}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _jsonable(message: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(message, cls=DjangoJSONEncoder))


def notify_user(user_id: int, message: dict[str, Any]) -> None:
    """Send now (from sync code). Delivery problems are logged, never raised: a lost
    notification must not undo the change it reports."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            user_group(user_id), {"type": FORWARD_EVENT, "message": _jsonable(message)}
        )
    except Exception:
        logger.exception("websocket notify failed", extra={"user_id": user_id})


async def anotify_user(user_id: int, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(
            user_group(user_id), {"type": FORWARD_EVENT, "message": _jsonable(message)}
        )
    except Exception:
        logger.exception("websocket notify failed", extra={"user_id": user_id})


def notify_user_on_commit(user_id: int, message: dict[str, Any]) -> None:
    """Send after the current transaction commits (at once when there is none)."""
    transaction.on_commit(lambda: notify_user(user_id, message))
