"""CRUD for scheduled orders (SPEC 4): thin views over orders.scheduled.services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.scheduled import selectors
from orders.scheduled import services as scheduling
from orders.scheduled.api.serializers import ScheduledOrderSerializer
from orders.services.audit import user_actor
from trading_site.core.api.owned_rows import OwnedRowChangeView

_ONE = inline_serializer("ScheduledOrderDetail", {"scheduled_order": ScheduledOrderSerializer()})


class ScheduledOrderListView(APIView):
    rate_limit_group = "default"

    @extend_schema(
        responses=inline_serializer(
            "ScheduledOrderList", {"scheduled_orders": ScheduledOrderSerializer(many=True)}
        )
    )
    def get(self, request):
        schedules = selectors.scheduled_orders_with_recent_runs(user=request.user)
        return Response({"scheduled_orders": ScheduledOrderSerializer(schedules, many=True).data})

    @extend_schema(request=ScheduledOrderSerializer, responses={201: _ONE})
    def post(self, request):
        data = ScheduledOrderSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        schedule = scheduling.create_scheduled_order(
            user=request.user, actor=user_actor(request.user), **data.validated_data
        )
        return Response(
            {"scheduled_order": ScheduledOrderSerializer(schedule).data},
            status=status.HTTP_201_CREATED,
        )


class ScheduledOrderDetailView(OwnedRowChangeView):
    rate_limit_group = "default"
    url_kwarg = "schedule_id"
    envelope = "scheduled_order"
    serializer_class = ScheduledOrderSerializer
    answer_schema = _ONE

    def find(self, request, row_id):
        return selectors.scheduled_order_for(user=request.user, schedule_id=row_id)

    def update(self, request, row, changes):
        return scheduling.update_scheduled_order(
            schedule=row, actor=user_actor(request.user), **changes
        )

    def remove(self, request, row):
        scheduling.delete_scheduled_order(schedule=row, actor=user_actor(request.user))
