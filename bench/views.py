"""The floors the benchmarks compare the product against (mounted by bench.urls only)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.models import BenchRow
from orders.models import Order


class BenchBareInsertView(APIView):
    """The floor of an authenticated DRF write: one row inserted into a bench-only table,
    nothing else (bench/orders_place.py)."""

    rate_limit_group = "orders"

    @extend_schema(exclude=True)
    def post(self, request):
        row = BenchRow.objects.create(actor=f"user:{request.user.pk}")
        return Response({"id": row.pk}, status=status.HTTP_201_CREATED)


class BenchOrderByPkView(APIView):
    """The floor of an authenticated DRF read: one order fetched by primary key
    (bench/orders_list.py)."""

    rate_limit_group = "read"

    @extend_schema(exclude=True)
    def get(self, request):
        order = Order.objects.filter(user=request.user).only("id").order_by("-id").first()
        return Response({"id": order.pk if order else None})
