"""The Celery app carries the one beat schedule, at the configured monitoring interval."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from trading_site.celery import app


def test_beat_runs_the_monitoring_dispatch_at_the_configured_interval():
    entry = app.conf.beat_schedule["dispatch-monitoring-cycles"]
    assert entry["task"] == "monitoring.tasks.dispatch_monitoring_cycles"
    assert entry["schedule"] == timedelta(seconds=settings.MONITOR_INTERVAL_SECONDS)


def test_settings_hold_no_beat_schedule_of_their_own():
    assert not hasattr(settings, "CELERY_BEAT_SCHEDULE")
