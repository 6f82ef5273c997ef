"""GET /api/trades: every fill of the caller's accounts (filters: account_id, date or
since/until, symbol, exchange_segment + exchange_instrument_id; limit/offset), newest first.
GET /api/trades/export: the same, as a streamed CSV (plain numbers, ISO times +05:30).
Another user's account is a 404; a bad filter a 400."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.views import APIView

from accounts.selectors import broker_account_for
from orders.tradebook import csv_export, selectors
from orders.tradebook.api.serializers import TradeFilterSerializer, TradeSerializer, trade_row
from trading_site.core.api.pagination import LimitOffsetTotalPagination
from trading_site.core.api.schema import csv_answer

FILTERS = [
    OpenApiParameter("account_id", int),
    OpenApiParameter("date", str, description="YYYY-MM-DD: one trading day"),
    OpenApiParameter("since", str, description="YYYY-MM-DD, inclusive"),
    OpenApiParameter("until", str, description="YYYY-MM-DD, inclusive"),
    OpenApiParameter("symbol", str),
    OpenApiParameter("exchange_segment", str),
    OpenApiParameter("exchange_instrument_id", int),
]


def parse_filters(request) -> selectors.TradeFilters:
    query = TradeFilterSerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    filters = query.filters()
    if filters.account_id is not None:
        broker_account_for(user=request.user, account_id=filters.account_id)  # 404 if not theirs
    return filters


class TradePagination(LimitOffsetTotalPagination):
    results_key = "trades"


class TradesView(APIView):
    rate_limit_group = "read"
    pagination_class = TradePagination

    @extend_schema(
        parameters=[*FILTERS, OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses=TradeSerializer(many=True),
    )
    def get(self, request):
        trades = selectors.trade_list(user=request.user, filters=parse_filters(request))
        paginator = self.pagination_class()
        found = paginator.paginate_queryset(trades, request, view=self)
        assert found is not None  # the paginator always has a limit (default_limit)
        page = list(found)
        owners = selectors.owners_of(page)
        values = selectors.values_of(page)
        rows = [
            trade_row(t, owners.get((t.account_id, t.broker_order_id)), values[t.pk]) for t in page
        ]
        return paginator.get_paginated_response(TradeSerializer(rows, many=True).data)


class TradesExportView(APIView):
    rate_limit_group = "read"

    @extend_schema(parameters=FILTERS, responses=csv_answer("The trades as CSV"))
    def get(self, request):
        trades = selectors.trade_list(user=request.user, filters=parse_filters(request))
        return csv_export.csv_response(
            csv_export.trade_rows(trades), filename=csv_export.export_name("trades")
        )
