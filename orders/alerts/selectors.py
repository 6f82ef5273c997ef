"""Reads of alert webhooks, always scoped to the user who asks."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Strategy
from orders.alerts.models import AlertWebhook, ReceivedAlert

RECENT_ALERTS_SHOWN = 25


def webhook_of(*, strategy: Strategy) -> AlertWebhook | None:
    return AlertWebhook.objects.select_related("account").filter(strategy=strategy).first()


def recent_alerts(*, webhook: AlertWebhook, limit: int = RECENT_ALERTS_SHOWN) -> QuerySet:
    return (
        ReceivedAlert.objects.filter(webhook=webhook)
        .select_related("order")
        .order_by("-received_at", "-id")[:limit]
    )
