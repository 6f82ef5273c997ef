"""Scheduled orders as the API shows and accepts them."""

from __future__ import annotations

from datetime import date, datetime, time

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from orders.models import Order
from orders.scheduled.models import ScheduledOrder, ScheduledOrderRun
from trading_site.core.market_hours import MARKET_TZ


class ScheduledOrderRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScheduledOrderRun
        fields = ["trading_date", "status", "order_id", "error", "created_at"]


class IstTimeField(serializers.TimeField):
    """A time of day in Asia/Kolkata. One given with an offset ("04:00:00Z") is that moment
    in IST (Asia/Kolkata keeps +05:30 all year): Django's parse_time dropped the offset, and
    an order meant for 09:30 IST ("04:00Z") fired at 04:00 IST."""

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                given = time.fromisoformat(value.strip())
            except ValueError:
                given = None
            if given is not None and given.tzinfo is not None:
                moment = datetime.combine(date(2026, 1, 1), given)
                return moment.astimezone(MARKET_TZ).time()
        return super().to_internal_value(value)


class ScheduledOrderSerializer(serializers.ModelSerializer):
    account_id = serializers.IntegerField()
    time_of_day = IstTimeField()
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
        runs = getattr(schedule, "recent_runs", None)  # prefetched by the list
        if runs is None:
            runs = schedule.runs.order_by("-trading_date")[:5]
        return list(ScheduledOrderRunSerializer(runs, many=True).data)
