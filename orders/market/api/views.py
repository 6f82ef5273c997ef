"""Instruments and fair prices: thin views over orders.market.services."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db.models import Q
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework import permissions, serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import ApiKeyScope
from orders.market.api.serializers import (
    FairPriceSerializer,
    FairPriceWriteSerializer,
    InstrumentSerializer,
)
from orders.market.services import FairPriceInput, record_fair_prices
from orders.models import FairPrice, Instrument
from orders.services.audit import user_actor
from trading_site.core.api.pagination import LimitOffsetTotalPagination
from trading_site.core.errors import ValidationFailed

# ---- instruments --------------------------------------------------------------------


class InstrumentPagination(LimitOffsetTotalPagination):
    results_key = "instruments"


class InstrumentListView(ListAPIView):
    """Search instruments by symbol or name; each with its rules and current fair price."""

    rate_limit_group = "read"
    serializer_class = InstrumentSerializer
    pagination_class = InstrumentPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("search", str, description="part of the symbol or name"),
            OpenApiParameter("exchange_segment", str),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        queryset = Instrument.objects.select_related("fair_price").order_by("trading_symbol", "id")
        search = self.request.query_params.get("search", "").strip()
        if search:
            queryset = queryset.filter(
                Q(trading_symbol__icontains=search)
                | Q(name__icontains=search)
                | Q(description__icontains=search)
            )
        segment = self.request.query_params.get("exchange_segment", "").strip()
        if segment:
            queryset = queryset.filter(exchange_segment=segment.upper())
        return queryset


# ---- fair prices --------------------------------------------------------------------


class FairPriceFeedPermission(permissions.BasePermission):
    """Reads: any signed-in user. Writes: staff, or a caller presenting the feed token."""

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return bool(request.user and request.user.is_authenticated)
        presented = request.headers.get("X-Feed-Token", "")
        expected = settings.FAIR_PRICE_FEED_TOKEN
        if presented:
            if expected and secrets.compare_digest(presented, expected):
                return True
            raise PermissionDenied("Invalid price feed token")
        if not (request.user and request.user.is_authenticated):
            return False  # DRF answers 401
        if not request.user.is_staff:
            raise PermissionDenied("Only staff or the price feed may write fair prices")
        return True


class FairPricePagination(LimitOffsetTotalPagination):
    results_key = "fair_prices"


def _csv_param(request, name: str) -> list[str]:
    raw = request.query_params.get(name, "")
    return [item.strip() for item in raw.split(",") if item.strip()]


def _resolve_instruments(rows: list[dict]) -> list[FairPriceInput]:
    """Every row's instrument, or a 400 naming the rows that match none (nothing written)."""
    ids = {row["instrument_id"] for row in rows if row.get("instrument_id")}
    keys = {
        (row["exchange_segment"].upper(), row["exchange_instrument_id"])
        for row in rows
        if not row.get("instrument_id") and row.get("exchange_segment")
    }
    symbols = {
        row["symbol"]
        for row in rows
        if row.get("symbol") and not row.get("instrument_id") and not row.get("exchange_segment")
    }
    query = Q(pk__in=ids) | Q(trading_symbol__in=symbols)
    for segment, instrument_id in keys:
        query |= Q(exchange_segment=segment, exchange_instrument_id=instrument_id)
    found = list(
        Instrument.objects.filter(query).only(
            "id", "exchange_segment", "exchange_instrument_id", "trading_symbol"
        )
    )
    by_id = {i.pk: i.pk for i in found}
    by_key = {(i.exchange_segment, i.exchange_instrument_id): i.pk for i in found}
    by_symbol: dict[str, list[int]] = {}
    for i in found:
        by_symbol.setdefault(i.trading_symbol, []).append(i.pk)
    resolved, errors, seen = [], {}, set()
    for index, row in enumerate(rows):
        if row.get("instrument_id"):
            pk = by_id.get(row["instrument_id"])
        elif row.get("exchange_segment"):
            pk = by_key.get((row["exchange_segment"].upper(), row["exchange_instrument_id"]))
        else:
            matches = by_symbol.get(row["symbol"], [])
            if len(matches) > 1:
                errors[str(index)] = ["symbol is ambiguous; give exchange_segment too"]
                continue
            pk = matches[0] if matches else None
        if pk is None:
            errors[str(index)] = ["instrument not found"]
            continue
        if pk in seen:
            errors[str(index)] = ["the same instrument appears twice"]
            continue
        seen.add(pk)
        resolved.append(
            FairPriceInput(
                instrument_id=pk,
                buy_fair_price=row["buy_fair_price"],
                sell_fair_price=row["sell_fair_price"],
                avg_fair_price=row.get("avg_fair_price"),
                last_traded_price=row.get("last_traded_price"),
            )
        )
    if errors:
        raise ValidationFailed("Some rows name no instrument", details={"prices": errors})
    return resolved


class FairPriceView(APIView):
    """GET the current fair prices (filter by instrument_ids or symbols); POST a bulk update."""

    permission_classes = [ApiKeyScope, FairPriceFeedPermission]
    pagination_class = FairPricePagination  # the schema shows the {fair_prices, ...} envelope

    @property
    def rate_limit_group(self) -> str:
        return "read" if self.request.method in permissions.SAFE_METHODS else "default"

    @extend_schema(
        parameters=[
            OpenApiParameter("instrument_ids", str, description="comma-separated ids"),
            OpenApiParameter("symbols", str, description="comma-separated trading symbols"),
        ],
        responses=FairPriceSerializer(many=True),
    )
    def get(self, request):
        queryset = FairPrice.objects.select_related("instrument").order_by("instrument_id")
        ids = _csv_param(request, "instrument_ids")
        if ids:
            # isdecimal, not isdigit: "²" is a digit that int() refuses.
            if not all(item.isdecimal() for item in ids):
                raise ValidationFailed(
                    "instrument_ids must be comma-separated integers",
                    details={"instrument_ids": ids},
                )
            queryset = queryset.filter(instrument_id__in=[int(i) for i in ids])
        symbols = _csv_param(request, "symbols")
        if symbols:
            queryset = queryset.filter(instrument__trading_symbol__in=symbols)
        paginator = FairPricePagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(FairPriceSerializer(page, many=True).data)

    @extend_schema(
        request=FairPriceWriteSerializer,
        responses=inline_serializer(
            "FairPriceWriteResult",
            {"fair_prices": FairPriceSerializer(many=True), "count": serializers.IntegerField()},
        ),
    )
    def post(self, request):
        data = request.data
        if isinstance(data, list):
            data = {"prices": data}
        serializer = FairPriceWriteSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        rows = _resolve_instruments(serializer.validated_data["prices"])
        source = "feed" if request.headers.get("X-Feed-Token") else user_actor(request.user)
        written = record_fair_prices(rows=rows, source=source)
        return Response(
            {"fair_prices": FairPriceSerializer(written, many=True).data, "count": len(written)}
        )
