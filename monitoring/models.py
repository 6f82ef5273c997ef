"""Monitoring cycles, the trading-holiday list and process heartbeats."""

from __future__ import annotations

from django.conf import settings
from django.db import models

# The holiday calendar's model lives with the trading window that reads it (trading_site.core);
# it stays in this app (label, table and migrations unchanged).
from monitoring.pipeline import CycleStatus
from trading_site.core.models import TradingHoliday

__all__ = ["Heartbeat", "MonitoringRun", "TradingHoliday"]


class MonitoringRun(models.Model):
    """One user's monitoring cycle; unique per (user, cycle key), so it never runs twice."""

    Status = CycleStatus

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="monitoring_runs"
    )
    cycle_key = models.CharField(max_length=32)
    trigger = models.CharField(max_length=16, default="beat")  # beat, embedded, admin, manual
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # [{"step": 1, "name": "fetch_broker_data", "outcome": "ok|failed|skipped",
    #   "reason": "...", "duration_ms": 12}, ...]
    steps = models.JSONField(default=list)
    errors = models.JSONField(default=list)

    # A cycle at a glance (its key, what started it, how it ended, when, how long): the admin
    # and the API show these beside its steps and errors.
    SUMMARY_FIELDS = (
        "cycle_key",
        "trigger",
        "status",
        "started_at",
        "finished_at",
        "duration_ms",
    )

    class Meta:
        db_table = "monitoring_runs"
        constraints = [
            models.UniqueConstraint(fields=["user", "cycle_key"], name="uniq_monitoring_cycle")
        ]
        indexes = [models.Index(fields=["user", "-started_at"])]

    def __str__(self) -> str:
        return f"cycle {self.cycle_key} of user {self.user_id}"


class Heartbeat(models.Model):
    """The last time a process kind (e.g. 'beat') reported itself alive; /readyz reads it."""

    name = models.CharField(max_length=32, unique=True)
    beat_at = models.DateTimeField()

    class Meta:
        db_table = "heartbeats"
