"""CRUD for scheduled orders (SPEC 4): thin views over orders.scheduled.services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.scheduled import selectors
from orders.scheduled import services as scheduling
from orders.scheduled.api.serializers import ScheduledOrderSerializer

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
        schedule = scheduling.create_scheduled_order(user=request.user, **data.validated_data)
        return Response(
            {"scheduled_order": ScheduledOrderSerializer(schedule).data},
            status=status.HTTP_201_CREATED,
        )


class ScheduledOrderDetailView(APIView):
    rate_limit_group = "default"

    @extend_schema(responses=_ONE)
    def get(self, request, schedule_id: int):
        schedule = selectors.scheduled_order_for(user=request.user, schedule_id=schedule_id)
        return Response({"scheduled_order": ScheduledOrderSerializer(schedule).data})

    @extend_schema(request=ScheduledOrderSerializer, responses=_ONE)
    def patch(self, request, schedule_id: int):
        schedule = selectors.scheduled_order_for(user=request.user, schedule_id=schedule_id)
        data = ScheduledOrderSerializer(schedule, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        schedule = scheduling.update_scheduled_order(schedule=schedule, **data.validated_data)
        return Response({"scheduled_order": ScheduledOrderSerializer(schedule).data})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, schedule_id: int):
        schedule = selectors.scheduled_order_for(user=request.user, schedule_id=schedule_id)
        scheduling.delete_scheduled_order(schedule=schedule)
        return Response(status=status.HTTP_204_NO_CONTENT)
