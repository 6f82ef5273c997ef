"""The Celery app; the beat schedule lives in monitoring.schedule."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trading_site.settings")

app = Celery("trading_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
