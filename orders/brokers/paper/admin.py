"""Admin for the paper exchange's books. Paper orders and fills are a broker's records:
read-only here, like the broker snapshots."""

from __future__ import annotations

from django.contrib import admin

from orders.brokers.paper.models import (
    PaperBook,
    PaperOrder,
    PaperOrderState,
    PaperPositionConversion,
    PaperTrade,
)
from trading_site.core.admin import ReadOnlyAdmin


@admin.register(PaperBook)
class PaperBookAdmin(admin.ModelAdmin):
    list_display = ["name", "account", "starting_cash", "created_at"]
    search_fields = ["name", "account__account_name"]
    readonly_fields = ["created_at"]
    raw_id_fields = ["account"]


@admin.register(PaperOrder)
class PaperOrderAdmin(ReadOnlyAdmin):
    list_display = [
        "app_order_id",
        "book",
        "unique_identifier",
        "trading_symbol",
        "side",
        "order_type",
        "quantity",
        "filled_quantity",
        "average_price",
        "status",
        "created_at",
    ]
    list_filter = ["status", "order_type", "side", "exchange_segment"]
    search_fields = ["=app_order_id", "unique_identifier", "trading_symbol", "book__name"]
    list_select_related = ["book"]


@admin.register(PaperTrade)
class PaperTradeAdmin(ReadOnlyAdmin):
    list_display = [
        "execution_id",
        "book",
        "trading_symbol",
        "side",
        "quantity",
        "price",
        "traded_at",
    ]
    list_filter = ["side", "exchange_segment"]
    search_fields = ["execution_id", "trading_symbol", "book__name"]
    list_select_related = ["book"]


@admin.register(PaperOrderState)
class PaperOrderStateAdmin(ReadOnlyAdmin):
    """The XTS simulator's order history (one row per state an order passed through)."""

    list_display = ["order", "status", "quantity", "limit_price", "stop_price", "at"]
    list_filter = ["status"]
    search_fields = ["=order__app_order_id", "order__unique_identifier"]
    list_select_related = ["order"]


@admin.register(PaperPositionConversion)
class PaperPositionConversionAdmin(ReadOnlyAdmin):
    list_display = [
        "book",
        "exchange_segment",
        "exchange_instrument_id",
        "from_product",
        "to_product",
        "quantity",
        "at",
    ]
    search_fields = ["book__name", "=exchange_instrument_id"]
    list_select_related = ["book"]
