"""The exchange's holiday calendar, read by the trading window (trading_site.core.market_hours)."""

from __future__ import annotations

from django.db import models


class TradingHoliday(models.Model):
    """An exchange holiday: no cycles, no live orders (admin-editable)."""

    date = models.DateField(unique=True)
    description = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        # Owned by the monitoring app since its first migration: label, table and
        # migrations stay there (monitoring.models imports this class).
        app_label = "monitoring"
        db_table = "trading_holidays"
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date} {self.description}"
