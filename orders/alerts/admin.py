"""Admin for alert webhooks (secrets never shown) and the received alerts (read-only)."""

from __future__ import annotations

from django.contrib import admin

from orders.alerts.models import AlertWebhook, ReceivedAlert
from trading_site.core.admin import ReadOnlyAdmin


@admin.register(AlertWebhook)
class AlertWebhookAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "user", "strategy", "account", "enabled", "last_alert_at")
    list_filter = ("enabled",)
    search_fields = ("public_id", "user__username", "strategy__name")
    list_select_related = ("user", "strategy", "account")
    exclude = ("secret",)


@admin.register(ReceivedAlert)
class ReceivedAlertAdmin(ReadOnlyAdmin):
    list_display = ("id", "received_at", "user", "webhook", "outcome", "http_status", "order")
    list_filter = ("outcome", "shape", "received_at")
    search_fields = ("user__username", "alert_id", "source_ip")
    list_select_related = ("user", "webhook", "order")
    date_hierarchy = "received_at"
