"""Reads of scheduled orders: always the caller's own."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User
from orders.scheduled.models import ScheduledOrder
from trading_site.core.errors import NotFound


def scheduled_orders_for(*, user: User) -> QuerySet[ScheduledOrder]:
    return ScheduledOrder.objects.filter(user=user).order_by("time_of_day", "id")


def scheduled_order_for(*, user: User, schedule_id: int) -> ScheduledOrder:
    schedule = scheduled_orders_for(user=user).filter(pk=schedule_id).first()
    if schedule is None:
        raise NotFound("Scheduled order not found", details={"id": schedule_id})
    return schedule
