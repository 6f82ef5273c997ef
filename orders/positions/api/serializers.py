"""Request parsing and response shapes of the positions and holdings endpoints."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.api.serializers import NotSquaredOffSerializer
from orders.models import ExchangeSegment, ProductType
from orders.positions.holdings import AccountHoldings
from orders.positions.selectors import AccountPositions, PositionBook
from orders.positions.services import ExitResult
from trading_site.core.api.fields import BIGINT_MAX, MONEY, PRICE, ConfirmationField


class AccountFilterSerializer(serializers.Serializer):
    account_id = serializers.IntegerField(required=False, min_value=1, max_value=BIGINT_MAX)


class ExitPositionSerializer(serializers.Serializer):
    account_id = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)
    exchange_segment = serializers.ChoiceField(choices=ExchangeSegment.choices)
    exchange_instrument_id = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)
    product_type = serializers.ChoiceField(choices=ProductType.choices)


class ExitAllSerializer(serializers.Serializer):
    account_id = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)
    confirm = ConfirmationField(
        "EXIT ALL",
        help_text='Must be "EXIT ALL": a guard against a stray call',
        refusal='must be "EXIT ALL"',
    )


class PositionSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="account:segment:instrument:product")
    exchange_segment = serializers.CharField()
    exchange_instrument_id = serializers.IntegerField()
    trading_symbol = serializers.CharField()
    product_type = serializers.CharField()
    net_qty = serializers.IntegerField(allow_null=True, help_text="+ long, - short")
    buy_qty = serializers.IntegerField(allow_null=True)
    sell_qty = serializers.IntegerField(allow_null=True)
    average_price = serializers.DecimalField(**PRICE, allow_null=True)
    ltp = serializers.DecimalField(**PRICE, allow_null=True)
    mtm = serializers.DecimalField(**MONEY, allow_null=True, help_text="At the LTP, live")
    synced_at = serializers.DateTimeField(allow_null=True, help_text="Last broker sync")


class AccountPositionsSerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    account_name = serializers.CharField()
    money = serializers.ChoiceField(choices=["paper", "live"])
    mtm = serializers.DecimalField(**MONEY)
    synced_at = serializers.DateTimeField(allow_null=True)
    positions = PositionSerializer(many=True)


class MoneyTotalsSerializer(serializers.Serializer):
    paper = serializers.DecimalField(**MONEY, allow_null=True)
    live = serializers.DecimalField(**MONEY, allow_null=True)


class PositionsResponseSerializer(serializers.Serializer):
    accounts = AccountPositionsSerializer(many=True)
    totals = MoneyTotalsSerializer(help_text="Paper and live money are never added together")


class ExitResultSerializer(NotSquaredOffSerializer):
    complete = serializers.BooleanField()
    exited = serializers.ListField(child=serializers.CharField())
    exit_order_ids = serializers.ListField(child=serializers.IntegerField())
    exit_legs = serializers.ListField(child=serializers.CharField())
    cancelled_legs = serializers.ListField(child=serializers.CharField())
    protected = serializers.ListField(
        child=serializers.CharField(),
        help_text='One phrase per protected bracket ("RELIANCE (order 12): stop-loss and '
        'targets kept")',
    )
    unprotected = serializers.ListField(child=serializers.CharField())
    sized_to_broker = serializers.ListField(
        child=serializers.CharField(),
        help_text="One phrase per bracket the broker holds less of than the desk, whose exits "
        'and stop-loss were sized to what it holds ("RELIANCE (order 12): the desk held 10, '
        'the broker 4; its exits, stop-loss and targets sized to 4")',
    )
    # The metaclass moves declared fields off the class: this shadows Serializer.errors for
    # the type checker only.
    errors = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]


class HoldingSerializer(serializers.Serializer):
    exchange_segment = serializers.CharField()
    exchange_instrument_id = serializers.IntegerField()
    trading_symbol = serializers.CharField()
    isin = serializers.CharField()
    quantity = serializers.IntegerField(allow_null=True)
    pledged_quantity = serializers.IntegerField(allow_null=True)
    average_price = serializers.DecimalField(**PRICE, allow_null=True)
    ltp = serializers.DecimalField(**PRICE, allow_null=True)
    invested = serializers.DecimalField(**MONEY, allow_null=True)
    value = serializers.DecimalField(**MONEY, allow_null=True)
    pnl = serializers.DecimalField(**MONEY, allow_null=True)


class AccountHoldingsSerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    account_name = serializers.CharField()
    money = serializers.ChoiceField(choices=["paper", "live"])
    supported = serializers.BooleanField(help_text="False: the broker has no holdings to tell")
    error = serializers.CharField(help_text="Why the broker could not be read ('' when it was)")
    value = serializers.DecimalField(**MONEY)
    pnl = serializers.DecimalField(**MONEY)
    holdings = HoldingSerializer(many=True)


class HoldingsResponseSerializer(serializers.Serializer):
    accounts = AccountHoldingsSerializer(many=True)
    totals = MoneyTotalsSerializer(help_text="Current value per kind of money")


def position_row(row) -> dict[str, Any]:
    return {
        "key": row.key,
        "exchange_segment": row.exchange_segment,
        "exchange_instrument_id": row.exchange_instrument_id,
        "trading_symbol": row.trading_symbol,
        "product_type": row.product_type,
        "net_qty": row.net_qty,
        "buy_qty": row.buy_qty,
        "sell_qty": row.sell_qty,
        "average_price": row.average_price,
        "ltp": row.ltp,
        "mtm": row.mtm,
        "synced_at": row.synced_at,
    }


def account_positions(account: AccountPositions) -> dict[str, Any]:
    return {
        "account_id": account.account_id,
        "account_name": account.account_name,
        "money": account.money,
        "mtm": account.mtm,
        "synced_at": account.synced_at,
        "positions": [position_row(row) for row in account.rows],
    }


def positions_body(book: PositionBook) -> dict[str, Any]:
    return {
        "accounts": [account_positions(account) for account in book.accounts],
        "totals": {"paper": book.total("paper"), "live": book.total("live")},
    }


def exit_body(result: ExitResult) -> dict[str, Any]:
    return {
        "complete": result.complete,
        "exited": [
            f"{segment}:{instrument_id}:{product}"
            for segment, instrument_id, product in result.exited
        ],
        "exit_order_ids": result.exit_order_ids,
        "exit_legs": result.exit_legs,
        "cancelled_legs": result.cancelled_legs,
        "protected_order_ids": result.protected_order_ids,
        "unprotected_order_ids": result.unprotected_order_ids,
        "protected": result.protected,
        "unprotected": result.unprotected,
        "sized_to_broker": result.sized_to_broker,
        "errors": result.errors,
    }


def holdings_body(accounts: list[AccountHoldings]) -> dict[str, Any]:
    def total(money: str):
        chosen = [a for a in accounts if a.money == money]
        return sum((a.value for a in chosen), 0) if chosen else None

    return {
        "accounts": [
            {
                "account_id": a.account_id,
                "account_name": a.account_name,
                "money": a.money,
                "supported": a.supported,
                "error": a.error,
                "value": a.value,
                "pnl": a.pnl,
                "holdings": [
                    {
                        "exchange_segment": r.exchange_segment,
                        "exchange_instrument_id": r.exchange_instrument_id,
                        "trading_symbol": r.trading_symbol,
                        "isin": r.isin,
                        "quantity": r.quantity,
                        "pledged_quantity": r.pledged_quantity,
                        "average_price": r.average_price,
                        "ltp": r.ltp,
                        "invested": r.invested,
                        "value": r.value,
                        "pnl": r.pnl,
                    }
                    for r in a.rows
                ],
            }
            for a in accounts
        ],
        "totals": {"paper": total("paper"), "live": total("live")},
    }
