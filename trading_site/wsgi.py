"""WSGI entry point (gunicorn serves HTTP in the full-stack shape)."""

import os

from django.core.wsgi import get_wsgi_application

from trading_site.core.gc_tuning import tune_for_server

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trading_site.settings")
application = get_wsgi_application()
# A gunicorn worker lives long: what the application loaded stays out of every collection.
tune_for_server()
