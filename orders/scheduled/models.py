"""Scheduled orders: a template placed once per trading day, and the record of each day."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from orders.models import Order


class ScheduledOrder(models.Model):
    """An order template placed once per trading day at a time of day in Asia/Kolkata."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="scheduled_orders"
    )
    account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="scheduled_orders"
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=Order.Kind.choices, default=Order.Kind.SINGLE)
    # The same fields POST /api/orders (single) or /api/algo-orders (bracket) accept.
    template = models.JSONField()
    time_of_day = models.TimeField()
    weekdays = models.JSONField(default=list)  # 0=Monday ... 6=Sunday
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "scheduled_orders"
        indexes = [models.Index(fields=["enabled", "time_of_day"])]

    def __str__(self) -> str:
        return self.name


class ScheduledOrderRun(models.Model):
    """The record of one day a schedule ran; unique per day, so it runs once."""

    class Status(models.TextChoices):
        STARTED = "STARTED", "Started"  # claimed; the order is being placed
        PLACED = "PLACED", "Placed"
        REJECTED = "REJECTED", "Rejected"  # placed, and the broker refused it
        FAILED = "FAILED", "Failed"  # could not be placed (the reason is in `error`)
        MISSED = "MISSED", "Missed"  # its time had passed; nothing was sent

    schedule = models.ForeignKey(ScheduledOrder, on_delete=models.CASCADE, related_name="runs")
    trading_date = models.DateField()
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STARTED)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "scheduled_order_runs"
        constraints = [
            models.UniqueConstraint(fields=["schedule", "trading_date"], name="uniq_schedule_run")
        ]
