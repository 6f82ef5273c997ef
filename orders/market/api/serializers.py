"""Instruments and fair prices as the API shows them, and the fair-price rows it accepts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from orders.market.models import FairPrice, Instrument

MAX_FAIR_PRICE_ROWS = 1000
_PRICE: dict[str, Any] = {"max_digits": 15, "decimal_places": 4, "min_value": Decimal("0.0001")}


class FairPriceSerializer(serializers.ModelSerializer):
    instrument_id = serializers.IntegerField(source="instrument.pk", read_only=True)
    trading_symbol = serializers.CharField(source="instrument.trading_symbol", read_only=True)
    exchange_segment = serializers.CharField(source="instrument.exchange_segment", read_only=True)
    exchange_instrument_id = serializers.IntegerField(
        source="instrument.exchange_instrument_id", read_only=True
    )

    class Meta:
        model = FairPrice
        fields = [
            "instrument_id",
            "trading_symbol",
            "exchange_segment",
            "exchange_instrument_id",
            *FairPrice.PRICE_FIELDS,
            "source",
            "updated_at",
        ]


class _EmbeddedFairPriceSerializer(serializers.ModelSerializer):
    class Meta:
        model = FairPrice
        fields = [*FairPrice.PRICE_FIELDS, "updated_at"]


class InstrumentSerializer(serializers.ModelSerializer):
    fair_price = serializers.SerializerMethodField()

    class Meta:
        model = Instrument
        fields = [
            "id",
            "exchange_segment",
            "exchange_instrument_id",
            "trading_symbol",
            "name",
            "description",
            "series",
            "instrument_type",
            "lot_size",
            "tick_size",
            "freeze_quantity",
            "price_band_low",
            "price_band_high",
            "underlying",
            "expiry",
            "strike_price",
            "option_type",
            "fair_price",
        ]

    @extend_schema_field(_EmbeddedFairPriceSerializer(allow_null=True))
    def get_fair_price(self, instrument):
        fair = getattr(instrument, "fair_price", None)
        return _EmbeddedFairPriceSerializer(fair).data if fair is not None else None


class FairPriceRowSerializer(serializers.Serializer):
    """One row of a bulk write: the instrument by id, by (segment, exchange id) or by symbol."""

    instrument_id = serializers.IntegerField(required=False, min_value=1)
    exchange_segment = serializers.CharField(required=False, max_length=10)
    exchange_instrument_id = serializers.IntegerField(required=False, min_value=1)
    symbol = serializers.CharField(required=False, max_length=100)
    buy_fair_price = serializers.DecimalField(**_PRICE)
    sell_fair_price = serializers.DecimalField(**_PRICE)
    avg_fair_price = serializers.DecimalField(**_PRICE, required=False, allow_null=True)
    last_traded_price = serializers.DecimalField(**_PRICE, required=False, allow_null=True)

    def validate(self, attrs):
        has_key = (
            attrs.get("instrument_id")
            or (attrs.get("exchange_segment") and attrs.get("exchange_instrument_id"))
            or attrs.get("symbol")
        )
        if not has_key:
            raise serializers.ValidationError(
                "name the instrument: instrument_id, exchange_segment + "
                "exchange_instrument_id, or symbol"
            )
        if attrs["buy_fair_price"] < attrs["sell_fair_price"]:
            raise serializers.ValidationError(
                {"buy_fair_price": "must be at or above sell_fair_price"}
            )
        avg = attrs.get("avg_fair_price")
        if avg is not None and not (attrs["sell_fair_price"] <= avg <= attrs["buy_fair_price"]):
            raise serializers.ValidationError(
                {"avg_fair_price": "must lie between sell_fair_price and buy_fair_price"}
            )
        return attrs


class FairPriceWriteSerializer(serializers.Serializer):
    prices = FairPriceRowSerializer(many=True, allow_empty=False)

    def validate_prices(self, rows):
        if len(rows) > MAX_FAIR_PRICE_ROWS:
            raise serializers.ValidationError(f"at most {MAX_FAIR_PRICE_ROWS} rows per request")
        return rows
