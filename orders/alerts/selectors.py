"""Reads of alert webhooks, always scoped to the user who asks."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from accounts.models import Strategy
from orders.alerts.models import AlertWebhook, ReceivedAlert
from orders.models import Order

RECENT_ALERTS_SHOWN = 25


def webhook_of(*, strategy: Strategy) -> AlertWebhook | None:
    return AlertWebhook.objects.select_related("account").filter(strategy=strategy).first()


def recent_alerts(*, webhook: AlertWebhook, limit: int = RECENT_ALERTS_SHOWN) -> QuerySet:
    return (
        ReceivedAlert.objects.filter(webhook=webhook)
        .select_related("order")
        .order_by("-received_at", "-id")[:limit]
    )


def placed_with_key_since(*, user_id: int, client_order_id: str, since: datetime) -> bool:
    """Whether the user placed an order under this idempotency key since `since`."""
    return Order.objects.filter(
        user_id=user_id, client_order_id=client_order_id, created_at__gte=since
    ).exists()
