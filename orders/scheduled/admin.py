"""Admin for scheduled orders and the record of their daily runs."""

from __future__ import annotations

from django.contrib import admin

from orders.scheduled.models import ScheduledOrder, ScheduledOrderRun
from trading_site.core.admin import ReadOnlyAdmin, ReadOnlyInline


class ScheduledOrderRunInline(ReadOnlyInline):
    model = ScheduledOrderRun
    fields = ("trading_date", "status", "order", "error", "created_at")
    readonly_fields = fields
    ordering = ("-trading_date",)


@admin.register(ScheduledOrder)
class ScheduledOrderAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "account", "kind", "time_of_day", "weekdays", "enabled")
    list_filter = ("enabled", "kind")
    search_fields = ("name", "user__username", "account__account_name")
    list_select_related = ("user", "account")
    raw_id_fields = ("user", "account")
    inlines = (ScheduledOrderRunInline,)


@admin.register(ScheduledOrderRun)
class ScheduledOrderRunAdmin(ReadOnlyAdmin):
    list_display = ("schedule", "trading_date", "status", "order", "created_at")
    list_filter = ("status", "trading_date")
    search_fields = ("schedule__name",)
    list_select_related = ("schedule", "order")
    raw_id_fields = ("schedule", "order")
