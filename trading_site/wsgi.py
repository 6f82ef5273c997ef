"""WSGI entry point (gunicorn serves HTTP in the full-stack shape)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trading_site.settings")
application = get_wsgi_application()
