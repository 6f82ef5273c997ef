"""Reads for the monitoring API and pages."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User
from monitoring.models import MonitoringRun
from trading_site.core.db_router import reporting_alias


def monitoring_runs_for(*, user: User) -> QuerySet[MonitoringRun]:
    """Cycle history: a reporting read, served by the replica when one is configured."""
    return (
        MonitoringRun.objects.using(reporting_alias())
        .filter(user=user)
        .order_by("-started_at", "-id")
    )
