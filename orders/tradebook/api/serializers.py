"""Query parsing and response shape of the trade book endpoints."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from orders.models import BrokerTrade, ExchangeSegment
from orders.tradebook.selectors import FillOwner, TradeFilters
from trading_site.core.api.fields import BIGINT_MAX, PRICE


class TradeFilterSerializer(serializers.Serializer):
    account_id = serializers.IntegerField(required=False, min_value=1, max_value=BIGINT_MAX)
    date = serializers.DateField(required=False, help_text="One trading day (Asia/Kolkata)")
    since = serializers.DateField(required=False, help_text="First trading day, inclusive")
    until = serializers.DateField(required=False, help_text="Last trading day, inclusive")
    symbol = serializers.CharField(required=False, allow_blank=True, max_length=100)
    exchange_segment = serializers.ChoiceField(
        choices=ExchangeSegment.choices, required=False, allow_blank=True
    )
    exchange_instrument_id = serializers.IntegerField(
        required=False, min_value=1, max_value=BIGINT_MAX
    )

    def validate(self, data: dict) -> dict:
        if data.get("date") and (data.get("since") or data.get("until")):
            raise serializers.ValidationError({"date": ["give date, or since/until, not both"]})
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise serializers.ValidationError({"until": ["must be on or after since"]})
        return data

    def filters(self) -> TradeFilters:
        data = self.validated_data
        day = data.get("date")
        return TradeFilters(
            account_id=data.get("account_id"),
            since=day or data.get("since"),
            until=day or data.get("until"),
            symbol=data.get("symbol", ""),
            exchange_segment=data.get("exchange_segment", ""),
            exchange_instrument_id=data.get("exchange_instrument_id"),
        )


class TradeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    account_id = serializers.IntegerField()
    account_name = serializers.CharField()
    traded_at = serializers.DateTimeField()
    trading_symbol = serializers.CharField()
    exchange_segment = serializers.CharField()
    exchange_instrument_id = serializers.IntegerField()
    side = serializers.CharField()
    product_type = serializers.CharField()
    quantity = serializers.IntegerField()
    price = serializers.DecimalField(**PRICE)
    value = serializers.DecimalField(max_digits=22, decimal_places=4)
    execution_id = serializers.CharField()
    broker_order_id = serializers.CharField()
    order_id = serializers.IntegerField(allow_null=True, help_text="Our order, when it is ours")
    leg_role = serializers.CharField(allow_null=True)


def trade_row(trade: BrokerTrade, owner: FillOwner | None, value: Decimal) -> dict[str, Any]:
    return {
        "id": trade.pk,
        "account_id": trade.account_id,
        "account_name": trade.account.account_name,
        "traded_at": trade.traded_at,
        "trading_symbol": trade.trading_symbol,
        "exchange_segment": trade.exchange_segment,
        "exchange_instrument_id": trade.exchange_instrument_id,
        "side": trade.side,
        "product_type": trade.product_type,
        "quantity": trade.quantity,
        "price": trade.price,
        "value": value,
        "execution_id": trade.execution_id,
        "broker_order_id": trade.broker_order_id,
        "order_id": owner.order_id if owner else None,
        "leg_role": owner.role if owner else None,
    }
