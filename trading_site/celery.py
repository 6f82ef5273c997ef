"""The Celery app (full stack) and the ONE beat schedule: the monitoring loop, scheduled
orders, housekeeping. Tasks are found in each app's tasks.py."""

import os
from datetime import timedelta

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun, worker_init

from trading_site.core.cpu_priority import lower_priority
from trading_site.core.db_router import keep_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trading_site.settings")

app = Celery("trading_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def beat_schedule(interval_seconds: int) -> dict:
    """Every periodic task, with an `expires` so a backlog never runs stale ticks late."""
    interval = max(1, int(interval_seconds))
    # monitoring.tasks.<name>: (how often, expires after so many seconds)
    every = {
        "dispatch_monitoring_cycles": (timedelta(seconds=interval), interval),
        "place_due_scheduled_orders": (timedelta(seconds=min(60, interval)), 60),
        "beat_heartbeat": (timedelta(seconds=min(30, interval)), 30),
        "mark_abandoned_runs": (timedelta(seconds=60), 60),
        "refresh_broker_sessions": (timedelta(minutes=5), 300),
        "purge_expired_auth_sessions": (timedelta(hours=1), 3600),
        "purge_old_received_alerts": (timedelta(hours=6), 3600),
    }
    return {
        name.replace("_", "-"): {
            "task": f"monitoring.tasks.{name}",
            "schedule": schedule,
            "options": {"expires": expires},
        }
        for name, (schedule, expires) in every.items()
    }


@app.on_after_configure.connect
def install_beat_schedule(sender, **kwargs):
    """The schedule's interval is a setting (MONITOR_INTERVAL_SECONDS): installed once Celery
    has read Django's settings, so settings.py needs nothing from here."""
    from django.conf import settings

    sender.conf.beat_schedule = beat_schedule(settings.MONITOR_INTERVAL_SECONDS)


@setup_logging.connect
def use_django_logging(**kwargs):
    """Workers and beat log like every other process: settings.LOGGING (JSON lines, secrets
    redacted), instead of Celery's own format."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@worker_init.connect
def keep_database_connections(**kwargs):
    """Workers keep their MariaDB connection between tasks (WORKER_DB_CONN_MAX_AGE seconds,
    default 600; 0 = a new connection per task, as the web's ASGI process must do): a new
    connection cost more than a short monitoring cycle's own queries. A connection that saw
    an error, or that fails the health check at the next task's first query (MariaDB
    restarted), is replaced, exactly as Django does between requests. Runs in the worker's
    main process before the pool starts, so prefork children and pool threads inherit it."""
    from django.conf import settings

    keep_connections(settings.WORKER_DB_CONN_MAX_AGE)


@worker_init.connect
def give_way_to_broker_events(**kwargs):
    """With WORKER_NICENESS set (off by default), the worker (the monitoring loop, the safety
    net) runs that much nicer than the stream processes and the web server, so that on
    shared cores broker events and traders' requests get the CPU first
    (trading_site.core.cpu_priority). In the main process before the pool starts: prefork
    children and pool threads inherit it."""
    from django.conf import settings

    lower_priority(settings.WORKER_NICENESS)


@task_prerun.connect
@task_postrun.connect
def recycle_database_connections(sender=None, **kwargs):
    """Django's request-boundary rule at task boundaries: close connections that errored or
    outlived CONN_MAX_AGE, and arm the health check for the next task (Celery's own fixup
    closes them only every CELERY_DB_REUSE_MAX tasks, see settings). Not for eager tasks:
    they run inside the caller's request and perhaps its transaction."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
