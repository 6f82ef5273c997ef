"""Reads for the monitoring API and pages."""

from __future__ import annotations

from django.db.models import QuerySet

from monitoring.models import MonitoringRun
from orders.models import ScheduledOrder
from trading_site.core.api.errors import NotFound
from trading_site.core.db_router import reporting_alias


def monitoring_runs_for(*, user) -> QuerySet[MonitoringRun]:
    """Cycle history: a reporting read, served by the replica when one is configured."""
    return (
        MonitoringRun.objects.using(reporting_alias())
        .filter(user=user)
        .order_by("-started_at", "-id")
    )


def scheduled_orders_for(*, user) -> QuerySet[ScheduledOrder]:
    return ScheduledOrder.objects.filter(user=user).order_by("time_of_day", "id")


def scheduled_order_for(*, user, schedule_id: int) -> ScheduledOrder:
    schedule = scheduled_orders_for(user=user).filter(pk=schedule_id).first()
    if schedule is None:
        raise NotFound("Scheduled order not found", details={"id": schedule_id})
    return schedule
