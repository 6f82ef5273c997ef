"""The benchmarks' settings: the product's, plus the bench app and its floor endpoints.

The bench scripts select it (bench.common sets DJANGO_SETTINGS_MODULE=bench.settings for
themselves and the servers they start); the product never loads it.
"""

from trading_site.settings import *  # noqa: F403
from trading_site.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
ROOT_URLCONF = "bench.urls"
