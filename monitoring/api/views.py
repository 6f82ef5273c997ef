"""Monitoring API: the user's recent cycles (SPEC 4)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from monitoring import selectors
from monitoring.models import MonitoringRun
from trading_site.core.api.pagination import LimitOffsetTotalPagination


class MonitoringRunSerializer(serializers.ModelSerializer):
    steps = serializers.JSONField(
        help_text="[{step, name, outcome: ok|failed|skipped, reason, duration_ms, errors}]"
    )
    # The metaclass moves declared fields off the class: this shadows Serializer.errors for
    # the type checker only.
    errors = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]

    class Meta:
        model = MonitoringRun
        fields = ["id", *MonitoringRun.SUMMARY_FIELDS, "steps", "errors"]


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
