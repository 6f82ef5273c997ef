"""Admin for the instrument master and fair prices."""

from __future__ import annotations

from django.contrib import admin

from orders.market.models import FairPrice, Instrument


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = (
        "trading_symbol",
        "exchange_segment",
        "exchange_instrument_id",
        "series",
        "lot_size",
        "tick_size",
        "freeze_quantity",
        "price_band_low",
        "price_band_high",
    )
    list_filter = ("exchange_segment", "series", "instrument_type")
    search_fields = ("trading_symbol", "name", "=exchange_instrument_id")


@admin.register(FairPrice)
class FairPriceAdmin(admin.ModelAdmin):
    list_display = (
        "instrument",
        *FairPrice.PRICE_FIELDS,
        "source",
        "updated_at",
    )
    list_filter = ("source",)
    search_fields = ("instrument__trading_symbol",)
    list_select_related = ("instrument",)
    autocomplete_fields = ("instrument",)
