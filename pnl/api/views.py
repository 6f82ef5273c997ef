"""PnL API (SPEC 4): the FIFO lots, a per-instrument summary, the daily history.

Each view validates `account_id`, resolves the caller's own account (another user's is a 404),
brings the stored result up to date when it predates the account's last broker sync, and
shapes the stored rows. Reads share the "read" rate-limit group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from decimal import Decimal

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from accounts.models import BrokerAccount
from accounts.selectors import broker_account_for, broker_accounts_for
from pnl import selectors, services
from pnl.api.serializers import (
    AccountQuerySerializer,
    BrokerOrderBookPnlSerializer,
    DayQuerySerializer,
    DaySerializer,
    HistoryQuerySerializer,
    IntradayResponseSerializer,
    PnlSummarySerializer,
)
from pnl.models import PnlDaily, PnlLot
from trading_site.core.api.pagination import LimitOffsetTotalPagination
from trading_site.core.market_hours import MARKET_TZ

ACCOUNT_ID = OpenApiParameter("account_id", int, required=True, description="Broker account id")


def _fresh_account(request, serializer_class=AccountQuerySerializer):
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    account = broker_account_for(user=request.user, account_id=query.validated_data["account_id"])
    services.refresh_account_pnl_if_stale(account=account)
    return account, query.validated_data


def _lot_row(lot: PnlLot, prices: dict) -> dict:
    fair = prices.get((lot.exchange_segment, lot.exchange_instrument_id), {})
    matched = lot.kind == PnlLot.Kind.MATCHED
    return {
        "ExchangeSegment": lot.exchange_segment,
        "ExchangeInstrumentID": lot.exchange_instrument_id,
        "TradingSymbol": lot.trading_symbol,
        "Entry_Order_id": lot.entry_order_id,
        "Entry_datetime": lot.entry_time,
        "BO_Entry_Quantity": lot.quantity,
        "BO_entry_price": lot.entry_price,
        "Sell_Order_id": lot.exit_order_id if matched else None,
        "SL_ExchangeTransactTime": lot.exit_time,
        "BO_SL_price": lot.exit_price,
        "BO_SL_Quantity": lot.quantity if matched else 0,
        "BO_PNL": lot.realized_pnl if matched else lot.unrealized_pnl,
        "mark_price": lot.fair_price_used,
        "buy_fair_price": fair.get("buy_fair_price"),
        "sell_fair_price": fair.get("sell_fair_price"),
        "avg_fair_price": fair.get("avg_fair_price"),
        "lot_status": lot.kind,
        "side": lot.entry_side,
    }


def _day_row(day: PnlDaily) -> dict:
    return {
        "trading_date": day.trading_date,
        "realized": day.realized,
        "unrealized": day.unrealized,
        "total": day.realized + day.unrealized,
        "turnover": day.turnover,
        "fills": day.fills,
    }


def _lot_book_body(account: BrokerAccount) -> dict:
    lots = list(selectors.pnl_lots_for(account=account))
    prices = selectors.fair_prices_for_rows(lots)
    return {
        "pnl_data": [_lot_row(lot, prices) for lot in lots],
        "computed_at": selectors.last_computed_at(account=account),
    }


def _summary_body(account: BrokerAccount) -> dict:
    states = list(selectors.instrument_states_for(account=account))
    prices = selectors.fair_prices_for_rows(states)
    instruments = []
    for state in states:
        fair = prices.get((state.exchange_segment, state.exchange_instrument_id), {})
        realized = services.to_money(state.realized)
        unrealized = services.to_money(state.unrealized)
        instruments.append(
            {
                "exchange_segment": state.exchange_segment,
                "exchange_instrument_id": state.exchange_instrument_id,
                "trading_symbol": state.trading_symbol,
                "realized": realized,
                "unrealized": unrealized,
                "total": realized + unrealized,
                "open_quantity": state.open_quantity,
                "fills": state.fill_count,
                **{name: fair.get(name) for name in selectors.FAIR_PRICE_FIELDS},
            }
        )
    realized = services.to_money(sum((s.realized for s in states), Decimal(0)))
    unrealized = services.to_money(sum((s.unrealized for s in states), Decimal(0)))
    trading_date, _start, _end = services.trading_day_bounds(timezone.now())
    today = selectors.pnl_day_for(account=account, trading_date=trading_date)
    return {
        "account_id": account.pk,
        "realized": realized,
        "unrealized": unrealized,
        "total": realized + unrealized,
        "computed_at": selectors.last_computed_at(account=account),
        "instruments": instruments,
        "today": _day_row(today) if today else None,
    }


# GET one account's stored PnL, brought up to date first (`_fresh_account`), shaped by
# `present` and answered as `answer` documents it (its schema too). (No docstring: the schema
# describes an endpoint by the docstring its view inherits.)
class _AccountPnlView(APIView):
    rate_limit_group = "read"
    present: Callable[[BrokerAccount], dict]
    answer: type[Serializer]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        extend_schema_view(get=extend_schema(parameters=[ACCOUNT_ID], responses=cls.answer))(cls)

    def get(self, request):
        account, _query = _fresh_account(request)
        return Response(self.answer(self.present(account)).data)


class BrokerOrderBookPnlView(_AccountPnlView):
    """Every FIFO lot of the account with the instrument's current fair prices."""

    present = staticmethod(_lot_book_body)
    answer = BrokerOrderBookPnlSerializer


class PnlSummaryView(_AccountPnlView):
    """Realized, unrealized and total of the account, per instrument, and today's figures."""

    present = staticmethod(_summary_body)
    answer = PnlSummarySerializer


class HistoryPagination(LimitOffsetTotalPagination):
    results_key = "history"
    default_limit = 100


class PnlHistoryView(APIView):
    """Daily rows (Asia/Kolkata trading dates), oldest first, from `since` when given."""

    rate_limit_group = "read"
    pagination_class = HistoryPagination

    @extend_schema(
        parameters=[
            ACCOUNT_ID,
            OpenApiParameter("since", str, description="First trading date, YYYY-MM-DD"),
            OpenApiParameter("limit", int),
            OpenApiParameter("offset", int),
        ],
        responses=DaySerializer(many=True),
    )
    def get(self, request):
        account, query = _fresh_account(request, HistoryQuerySerializer)
        days = selectors.pnl_days_for(account=account, since=query.get("since"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(days, request, view=self)
        assert page is not None  # the paginator always has a limit (default_limit)
        return paginator.get_paginated_response(
            DaySerializer([_day_row(day) for day in page], many=True).data
        )


def _report_body(report) -> dict:
    points = report.points
    marked = report.drawdown.peak_and_trough
    charges = report.charges.charges
    return {
        "account_ids": report.account_ids,
        "date": report.day,
        "points": [{"minute": minute, "mtm": value} for minute, value in points],
        "max_drawdown": {
            "amount": report.drawdown.amount,
            "peak_at": points[marked[0]][0] if marked else None,
            "trough_at": points[marked[1]][0] if marked else None,
        },
        "gross": report.gross,
        "charges": {
            **asdict(charges),
            "total": charges.total,
            "orders": report.charges.orders,
            "not_estimated": report.charges.not_estimated,
        },
        "net": report.net,
    }


class IntradayView(APIView):
    """The intraday MTM curve (one point a minute) with its maximum drawdown, and the day's
    gross PnL, estimated charges and net PnL: of one account, or of all the caller's accounts
    with paper and live apart (`paper`, `live`; null when the caller has none of that kind)."""

    rate_limit_group = "read"

    @extend_schema(
        parameters=[
            OpenApiParameter("account_id", int, description="One account (default: all)"),
            OpenApiParameter("date", str, description="YYYY-MM-DD (IST); default today"),
        ],
        responses=IntradayResponseSerializer,
    )
    def get(self, request):
        query = DayQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        day = query.validated_data.get("date") or timezone.localdate(timezone.now(), MARKET_TZ)
        account_id = query.validated_data.get("account_id")
        if account_id is not None:
            accounts = [broker_account_for(user=request.user, account_id=account_id)]
        else:
            accounts = list(broker_accounts_for(user=request.user))
        body = {}
        for money in ("paper", "live"):
            chosen = [a for a in accounts if (a.broker == "PAPER") == (money == "paper")]
            body[money] = (
                _report_body(selectors.day_report(accounts=chosen, day=day)) if chosen else None
            )
        return Response(IntradayResponseSerializer(body).data)
