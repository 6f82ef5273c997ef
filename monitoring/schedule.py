"""The one beat schedule (settings.CELERY_BEAT_SCHEDULE = beat_schedule(...)).

Pure data, no Django imports, so settings.py can import it.
"""

from __future__ import annotations

from datetime import timedelta


def beat_schedule(interval_seconds: int) -> dict:
    """Every periodic task, with an `expires` so a backlog never runs stale ticks late."""
    interval = max(1, int(interval_seconds))
    return {
        "dispatch-monitoring-cycles": {
            "task": "monitoring.tasks.dispatch_monitoring_cycles",
            "schedule": timedelta(seconds=interval),
            "options": {"expires": interval},
        },
        "place-due-scheduled-orders": {
            "task": "monitoring.tasks.place_due_scheduled_orders",
            "schedule": timedelta(seconds=min(60, interval)),
            "options": {"expires": 60},
        },
        "beat-heartbeat": {
            "task": "monitoring.tasks.beat_heartbeat",
            "schedule": timedelta(seconds=min(30, interval)),
            "options": {"expires": 30},
        },
        "refresh-broker-sessions": {
            "task": "monitoring.tasks.refresh_broker_sessions",
            "schedule": timedelta(minutes=5),
            "options": {"expires": 300},
        },
        "purge-expired-auth-sessions": {
            "task": "monitoring.tasks.purge_expired_auth_sessions",
            "schedule": timedelta(hours=1),
            "options": {"expires": 3600},
        },
    }
