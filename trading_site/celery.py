"""The Celery app (full stack). The beat schedule lives in monitoring.schedule and reaches
Celery through settings.CELERY_BEAT_SCHEDULE; tasks are found in each app's tasks.py."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trading_site.settings")

app = Celery("trading_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
