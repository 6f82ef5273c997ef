"""Admin for instruments, fair prices and the paper exchange's book (wired from orders.admin).

Paper orders and fills are a broker's records: read-only here, like the broker snapshots.
"""

from django.contrib import admin

from orders.brokers.paper_models import (
    PaperBook,
    PaperOrder,
    PaperOrderState,
    PaperPositionConversion,
    PaperTrade,
)
from orders.models import FairPrice, Instrument


class FairPriceInline(admin.StackedInline):
    model = FairPrice
    extra = 0
    readonly_fields = ["updated_at"]


class InstrumentAdmin(admin.ModelAdmin):
    list_display = [
        "trading_symbol",
        "exchange_segment",
        "exchange_instrument_id",
        "series",
        "lot_size",
        "tick_size",
        "freeze_quantity",
        "price_band_low",
        "price_band_high",
    ]
    list_filter = ["exchange_segment", "series", "instrument_type"]
    search_fields = ["trading_symbol", "name", "description", "=exchange_instrument_id"]
    ordering = ["trading_symbol"]
    inlines = [FairPriceInline]


class FairPriceAdmin(admin.ModelAdmin):
    list_display = [
        "instrument",
        "buy_fair_price",
        "sell_fair_price",
        "avg_fair_price",
        "last_traded_price",
        "source",
        "updated_at",
    ]
    list_filter = ["source"]
    search_fields = ["instrument__trading_symbol"]
    list_select_related = ["instrument"]
    autocomplete_fields = ["instrument"]

    def save_model(self, request, obj, form, change):
        # An admin edit is a price write like any other: route it through the service so
        # the paper exchange matches against it.
        from orders.market_services import record_fair_prices

        record_fair_prices(
            rows=[
                {
                    "instrument_id": obj.instrument_id,
                    "buy_fair_price": obj.buy_fair_price,
                    "sell_fair_price": obj.sell_fair_price,
                    "avg_fair_price": obj.avg_fair_price,
                    "last_traded_price": obj.last_traded_price,
                }
            ],
            source=f"admin:{request.user.pk}",
        )


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class PaperBookAdmin(admin.ModelAdmin):
    list_display = ["name", "account", "starting_cash", "created_at"]
    search_fields = ["name", "account__account_name"]
    readonly_fields = ["created_at"]
    raw_id_fields = ["account"]


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


class PaperOrderStateAdmin(ReadOnlyAdmin):
    """The XTS simulator's order history (one row per state an order passed through)."""

    list_display = ["order", "status", "quantity", "limit_price", "stop_price", "at"]
    list_filter = ["status"]
    search_fields = ["=order__app_order_id", "order__unique_identifier"]
    list_select_related = ["order"]


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


def register_market_admin(site: admin.AdminSite = admin.site) -> None:
    """Register (once) on the given site; safe if another module registered some already."""
    for model, model_admin in (
        (Instrument, InstrumentAdmin),
        (FairPrice, FairPriceAdmin),
        (PaperBook, PaperBookAdmin),
        (PaperOrder, PaperOrderAdmin),
        (PaperTrade, PaperTradeAdmin),
        (PaperOrderState, PaperOrderStateAdmin),
        (PaperPositionConversion, PaperPositionConversionAdmin),
    ):
        if not site.is_registered(model):
            site.register(model, model_admin)


register_market_admin()
