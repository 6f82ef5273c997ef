"""Reads of scheduled orders: always the caller's own."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from accounts.models import User
from orders.scheduled.models import ScheduledOrder, ScheduledOrderRun
from trading_site.core.errors import NotFound

RECENT_RUNS = 5


def scheduled_orders_for(*, user: User) -> QuerySet[ScheduledOrder]:
    return ScheduledOrder.objects.filter(user=user).order_by("time_of_day", "id")


def scheduled_orders_with_recent_runs(*, user: User) -> QuerySet[ScheduledOrder]:
    """The list: each schedule with its last RECENT_RUNS runs as `recent_runs`, all of them
    in one more query (a window per schedule), not one per schedule."""
    return scheduled_orders_for(user=user).prefetch_related(
        Prefetch(
            "runs",
            queryset=ScheduledOrderRun.objects.order_by("-trading_date")[:RECENT_RUNS],
            to_attr="recent_runs",
        )
    )


def scheduled_order_for(*, user: User, schedule_id: int) -> ScheduledOrder:
    schedule = scheduled_orders_for(user=user).filter(pk=schedule_id).first()
    if schedule is None:
        raise NotFound("Scheduled order not found", details={"id": schedule_id})
    return schedule
