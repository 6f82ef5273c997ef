"""Query parsing and response shapes of the PnL API (field names of the design kept)."""

from __future__ import annotations

import dataclasses

from rest_framework import serializers

from orders.domain.vocabulary import Side
from pnl.charges import Charges
from trading_site.core.api.fields import BIGINT_MAX, MONEY, PRICE


class AccountQuerySerializer(serializers.Serializer):
    account_id = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)


class HistoryQuerySerializer(AccountQuerySerializer):
    since = serializers.DateField(required=False)


class BrokerOrderBookPnlRowSerializer(serializers.Serializer):
    """One FIFO lot: a matched entry/exit pair (MATCHED) or an open lot (OPEN)."""

    ExchangeSegment = serializers.CharField()
    ExchangeInstrumentID = serializers.IntegerField()
    TradingSymbol = serializers.CharField()
    Entry_Order_id = serializers.CharField()
    Entry_datetime = serializers.DateTimeField()
    BO_Entry_Quantity = serializers.IntegerField(help_text="Quantity of the lot")
    BO_entry_price = serializers.DecimalField(**PRICE)
    Sell_Order_id = serializers.CharField(allow_null=True, help_text="Exit order id")
    SL_ExchangeTransactTime = serializers.DateTimeField(allow_null=True, help_text="Exit time")
    BO_SL_price = serializers.DecimalField(**PRICE, allow_null=True, help_text="Exit price")
    BO_SL_Quantity = serializers.IntegerField(help_text="Quantity closed (0 for open lots)")
    BO_PNL = serializers.DecimalField(
        **PRICE, help_text="Realized PnL (MATCHED) or unrealized PnL at the mark (OPEN)"
    )
    mark_price = serializers.DecimalField(
        **PRICE, allow_null=True, help_text="OPEN lots: the price the lot was valued at"
    )
    buy_fair_price = serializers.DecimalField(**PRICE, allow_null=True)
    sell_fair_price = serializers.DecimalField(**PRICE, allow_null=True)
    avg_fair_price = serializers.DecimalField(**PRICE, allow_null=True)
    lot_status = serializers.ChoiceField(choices=["MATCHED", "OPEN"])
    side = serializers.ChoiceField(
        choices=Side.values, help_text="Entry side: BUY = long lot, SELL = short lot"
    )


class BrokerOrderBookPnlSerializer(serializers.Serializer):
    pnl_data = BrokerOrderBookPnlRowSerializer(many=True)
    computed_at = serializers.DateTimeField(allow_null=True)


class DaySerializer(serializers.Serializer):
    trading_date = serializers.DateField()
    realized = serializers.DecimalField(**MONEY)
    unrealized = serializers.DecimalField(**MONEY)
    total = serializers.DecimalField(**MONEY)
    turnover = serializers.DecimalField(**MONEY)
    fills = serializers.IntegerField()


class InstrumentSummarySerializer(serializers.Serializer):
    exchange_segment = serializers.CharField()
    exchange_instrument_id = serializers.IntegerField()
    trading_symbol = serializers.CharField()
    realized = serializers.DecimalField(**MONEY)
    unrealized = serializers.DecimalField(**MONEY)
    total = serializers.DecimalField(**MONEY)
    open_quantity = serializers.IntegerField(help_text="Signed: + long, - short")
    fills = serializers.IntegerField()
    buy_fair_price = serializers.DecimalField(**PRICE, allow_null=True)
    sell_fair_price = serializers.DecimalField(**PRICE, allow_null=True)
    avg_fair_price = serializers.DecimalField(**PRICE, allow_null=True)
    last_traded_price = serializers.DecimalField(**PRICE, allow_null=True)


class PnlSummarySerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    realized = serializers.DecimalField(**MONEY)
    unrealized = serializers.DecimalField(**MONEY)
    total = serializers.DecimalField(**MONEY)
    computed_at = serializers.DateTimeField(allow_null=True)
    instruments = InstrumentSummarySerializer(many=True)
    today = DaySerializer(allow_null=True)


class DayQuerySerializer(serializers.Serializer):
    account_id = serializers.IntegerField(
        required=False, min_value=1, max_value=BIGINT_MAX, help_text="Default: all accounts"
    )
    date = serializers.DateField(required=False, help_text="Trading day; default today (IST)")


class CurvePointSerializer(serializers.Serializer):
    minute = serializers.DateTimeField()
    mtm = serializers.DecimalField(**MONEY)


class DrawdownSerializer(serializers.Serializer):
    amount = serializers.DecimalField(**MONEY)
    peak_at = serializers.DateTimeField(allow_null=True)
    trough_at = serializers.DateTimeField(allow_null=True)


class ChargesSerializer(serializers.Serializer):
    total = serializers.DecimalField(**MONEY)
    orders = serializers.IntegerField(help_text="Executed orders estimated")
    not_estimated = serializers.IntegerField(help_text="Executed orders in other segments")

    def get_fields(self):
        # One money field per charge of pnl.charges.Charges (named there once), in its
        # order, before the total.
        each = {
            charge.name: serializers.DecimalField(**MONEY) for charge in dataclasses.fields(Charges)
        }
        return {**each, **super().get_fields()}


class DayReportSerializer(serializers.Serializer):
    account_ids = serializers.ListField(child=serializers.IntegerField())
    date = serializers.DateField()
    points = CurvePointSerializer(many=True)
    max_drawdown = DrawdownSerializer()
    gross = serializers.DecimalField(**MONEY)
    charges = ChargesSerializer()
    net = serializers.DecimalField(**MONEY)


class IntradayResponseSerializer(serializers.Serializer):
    paper = DayReportSerializer(allow_null=True, help_text="Paper accounts (never with live)")
    live = DayReportSerializer(allow_null=True)
