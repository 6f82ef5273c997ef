"""The Celery app (full stack). The beat schedule lives in monitoring.schedule and reaches
Celery through settings.CELERY_BEAT_SCHEDULE; tasks are found in each app's tasks.py."""

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trading_site.settings")

app = Celery("trading_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**kwargs):
    """Workers and beat log like every other process: settings.LOGGING (JSON lines, secrets
    redacted), instead of Celery's own format."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
