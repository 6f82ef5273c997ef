"""The Celery app carries the one beat schedule, at the configured monitoring interval."""

from __future__ import annotations

from datetime import timedelta

from trading_site.celery import app, beat_schedule, install_beat_schedule


def test_the_configured_app_carries_every_periodic_task():
    assert set(app.conf.beat_schedule) == set(beat_schedule(60))


def test_beat_runs_the_monitoring_dispatch_at_the_configured_interval(settings):
    before = app.conf.beat_schedule
    settings.MONITOR_INTERVAL_SECONDS = 42
    try:
        install_beat_schedule(app)
        entry = app.conf.beat_schedule["dispatch-monitoring-cycles"]
        assert entry["task"] == "monitoring.tasks.dispatch_monitoring_cycles"
        assert entry["schedule"] == timedelta(seconds=42)
    finally:
        app.conf.beat_schedule = before


def test_settings_hold_no_beat_schedule_of_their_own(settings):
    assert not hasattr(settings, "CELERY_BEAT_SCHEDULE")
