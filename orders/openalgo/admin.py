"""Admin for the OpenAlgo request ledger (read-only: what each key sent and was answered)."""

from __future__ import annotations

from django.contrib import admin

from orders.openalgo.models import OpenAlgoRequest
from trading_site.core.admin import ReadOnlyAdmin


@admin.register(OpenAlgoRequest)
class OpenAlgoRequestAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "endpoint", "api_key", "account", "http_status")
    list_filter = ("endpoint", "http_status", "created_at")
    search_fields = ("fingerprint", "api_key__name", "account__account_name")
    list_select_related = ("api_key", "account")
    date_hierarchy = "created_at"
