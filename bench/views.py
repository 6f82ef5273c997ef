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
    """The floor of an authenticated DRF read: one of the caller's orders fetched by primary
    key (`?id=`; bench/orders_list.py). Until 2026-11-30 it read the caller's newest order
    (`ORDER BY id DESC LIMIT 1` under `user_id`), which no index serves in that order: a
    sort of the user's every order id, about as costly as the list's own count."""

    rate_limit_group = "read"

    @extend_schema(exclude=True)
    def get(self, request):
        order = Order.objects.filter(pk=request.query_params.get("id"), user=request.user)
        row = order.only("id").first()
        return Response({"id": row.pk if row else None})


class BenchNewestOrderView(APIView):
    """The floor `BenchOrderByPkView` was until 2026-11-30: the caller's newest order by id
    (a sort of the user's order ids), kept to compare with the runs measured against it."""

    rate_limit_group = "read"

    @extend_schema(exclude=True)
    def get(self, request):
        order = Order.objects.filter(user=request.user).only("id").order_by("-id").first()
        return Response({"id": order.pk if order else None})
