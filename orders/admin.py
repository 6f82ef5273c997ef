"""Django admin for orders: the audit trail and broker snapshots are read-only, never deleted.

Orders are changed only by the services (orders/services), so the admin shows them and their
legs read-only too; large foreign keys use raw ids so no page loads a whole table.
"""

from __future__ import annotations

from django.contrib import admin

# The admin of each feature's models lives beside them; importing registers it.
from orders.alerts import admin as alerts_admin  # noqa: F401
from orders.brokers.paper import admin as paper_admin  # noqa: F401
from orders.market import admin as market_admin  # noqa: F401
from orders.models import (
    BrokerOrder,
    BrokerPosition,
    BrokerTrade,
    DailyCounter,
    Order,
    OrderEvent,
    OrderLeg,
    RegenerationStage,
    UserOrderCount,
)
from orders.openalgo import admin as openalgo_admin  # noqa: F401
from orders.scheduled import admin as scheduled_admin  # noqa: F401
from trading_site.core.admin import ReadOnlyAdmin, ReadOnlyInline


class OrderLegInline(ReadOnlyInline):
    model = OrderLeg
    fields = (
        "role",
        "order_type",
        "side",
        "quantity",
        "filled_quantity",
        "limit_price",
        "stop_price",
        "average_price",
        "status",
        "unique_identifier",
        "broker_order_id",
        "reject_reason",
    )
    readonly_fields = fields


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    fk_name = "order"
    fields = ("created_at", "actor", "kind", "leg", "message")
    readonly_fields = fields
    ordering = ("created_at", "id")


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "user",
        "account",
        "symbol",
        "side",
        "quantity",
        "kind",
        "source",
        "status",
        "filled_quantity",
        "pnl",
        "open_position",
        "created_at",
    )
    list_filter = ("status", "kind", "source", "side", "product_type", "account__broker")
    search_fields = (
        "=id",
        "symbol",
        "external_id",
        "client_order_id",
        "user__username",
        "account__account_name",
        "legs__unique_identifier",
        "legs__broker_order_id",
    )
    list_select_related = ("user", "account")
    raw_id_fields = ("user", "account", "instrument", "strategy", "regenerated_from")
    show_full_result_count = False  # COUNT(*) over millions of orders on every page is waste
    inlines = (OrderLegInline, OrderEventInline)


@admin.register(OrderLeg)
class OrderLegAdmin(ReadOnlyAdmin):
    list_display = (
        "unique_identifier",
        "order",
        "role",
        "order_type",
        "side",
        "quantity",
        "filled_quantity",
        "status",
        "broker_order_id",
        "updated_at",
    )
    list_filter = ("role", "status", "order_type", "side")
    search_fields = ("=unique_identifier", "=broker_order_id", "=order__id")
    list_select_related = ("order",)
    raw_id_fields = ("order", "account")
    show_full_result_count = False


@admin.register(OrderEvent)
class OrderEventAdmin(ReadOnlyAdmin):
    """The audit trail: append-only, so no change and no delete, for anyone."""

    list_display = ("created_at", "kind", "actor", "order", "leg", "message")
    list_filter = ("kind",)
    search_fields = ("=order__id", "actor", "kind", "leg__unique_identifier")
    list_select_related = ("order", "leg")
    raw_id_fields = ("order", "leg", "account", "user")
    show_full_result_count = False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class _AccountRowsAdmin(ReadOnlyAdmin):
    """Rows of one broker account (its books, its counters): the account as a raw id, fetched
    with the list."""

    list_select_related = ("account",)
    raw_id_fields = ("account",)


@admin.register(BrokerOrder)
class BrokerOrderAdmin(_AccountRowsAdmin):
    list_display = (
        "broker_order_id",
        "account",
        "trading_symbol",
        "side",
        "order_type",
        "order_quantity",
        "cumulative_quantity",
        "status",
        "raw_status",
        "unique_identifier",
        "synced_at",
    )
    list_filter = ("status", "exchange_segment", "side")
    search_fields = ("=broker_order_id", "=unique_identifier", "trading_symbol")


@admin.register(BrokerTrade)
class BrokerTradeAdmin(_AccountRowsAdmin):
    list_display = (
        "execution_id",
        "account",
        "broker_order_id",
        "trading_symbol",
        "side",
        "quantity",
        "price",
        "traded_at",
    )
    list_filter = ("side", "exchange_segment")
    search_fields = ("=execution_id", "=broker_order_id", "trading_symbol")


@admin.register(BrokerPosition)
class BrokerPositionAdmin(_AccountRowsAdmin):
    list_display = (
        "account",
        "trading_symbol",
        "product_type",
        "net_qty",
        "buy_qty",
        "sell_qty",
        "realized_mtm",
        "unrealized_mtm",
        "mtm",
        "synced_at",
    )
    list_filter = ("product_type", "exchange_segment")
    search_fields = ("trading_symbol", "account__account_name")


@admin.register(DailyCounter)
class DailyCounterAdmin(_AccountRowsAdmin):
    """Changing a counter by hand could hand out an identifier twice: read-only."""

    list_display = ("account", "trading_date", "last_value")
    list_filter = ("trading_date",)
    search_fields = ("account__account_name",)


@admin.register(UserOrderCount)
class UserOrderCountAdmin(ReadOnlyAdmin):
    """Kept by the database's triggers on orders (the order list's total): read-only."""

    list_display = ("user_id", "total")
    search_fields = ("=user_id",)


@admin.register(RegenerationStage)
class RegenerationStageAdmin(ReadOnlyAdmin):
    list_display = ("source_order", "cycle_key", "status", "new_order", "created_at")
    list_filter = ("status",)
    search_fields = ("=source_order__id", "cycle_key")
    raw_id_fields = ("source_order", "new_order")
