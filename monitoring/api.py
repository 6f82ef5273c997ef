"""Monitoring API: the user's recent cycles, and CRUD for scheduled orders (SPEC 4)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring import selectors
from monitoring.models import MonitoringRun
from orders import scheduling
from orders.models import Order, ScheduledOrder, ScheduledOrderRun
from trading_site.api.pagination import LimitOffsetTotalPagination


class MonitoringRunSerializer(serializers.ModelSerializer):
    steps = serializers.JSONField(
        help_text="[{step, name, outcome: ok|failed|skipped, reason, duration_ms, errors}]"
    )
    errors = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = MonitoringRun
        fields = [
            "id",
            "cycle_key",
            "trigger",
            "status",
            "started_at",
            "finished_at",
            "duration_ms",
            "steps",
            "errors",
        ]


class RunsPagination(LimitOffsetTotalPagination):
    results_key = "runs"
    default_limit = 20


class MonitoringRunListView(APIView):
    """The caller's monitoring cycles, newest first."""

    rate_limit_group = "read"
    pagination_class = RunsPagination  # the schema shows the {runs, total, ...} envelope

    @extend_schema(responses=MonitoringRunSerializer(many=True))
    def get(self, request):
        paginator = RunsPagination()
        page = paginator.paginate_queryset(
            selectors.monitoring_runs_for(user=request.user), request, view=self
        )
        return paginator.get_paginated_response(MonitoringRunSerializer(page, many=True).data)


class ScheduledOrderRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScheduledOrderRun
        fields = ["trading_date", "status", "order_id", "error", "created_at"]


class ScheduledOrderSerializer(serializers.ModelSerializer):
    account_id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Order.Kind.choices, default=Order.Kind.SINGLE)
    template = serializers.JSONField(
        help_text="The body of POST /api/orders (single) or /api/algo-orders (bracket), "
        "without account_id."
    )
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6),
        required=False,
        default=list,
        help_text="0=Monday..6=Sunday; empty means every trading day",
    )
    recent_runs = serializers.SerializerMethodField()

    class Meta:
        model = ScheduledOrder
        fields = [
            "id",
            "name",
            "account_id",
            "kind",
            "template",
            "time_of_day",
            "weekdays",
            "enabled",
            "recent_runs",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "recent_runs", "created_at", "updated_at"]

    def validate_template(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be an object")
        return value

    @extend_schema_field(ScheduledOrderRunSerializer(many=True))
    def get_recent_runs(self, schedule: ScheduledOrder) -> list[dict]:
        runs = schedule.runs.order_by("-trading_date")[:5]
        return ScheduledOrderRunSerializer(runs, many=True).data


_ONE = inline_serializer("ScheduledOrderDetail", {"scheduled_order": ScheduledOrderSerializer()})


class ScheduledOrderListView(APIView):
    rate_limit_group = "default"

    @extend_schema(
        responses=inline_serializer(
            "ScheduledOrderList", {"scheduled_orders": ScheduledOrderSerializer(many=True)}
        )
    )
    def get(self, request):
        schedules = selectors.scheduled_orders_for(user=request.user)
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
