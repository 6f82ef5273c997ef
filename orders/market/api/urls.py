"""Instruments and fair prices (orders.market.api.views).

Paths without a trailing slash (SPEC 4), plus the trailing-slash spelling clients often send.
"""

from django.urls import path

from orders.market.api import views as market_views


def _both(route: str, view, name: str) -> list:
    return [path(route, view, name=name), path(route + "/", view)]


urlpatterns = [
    *_both("instruments", market_views.InstrumentListView.as_view(), "api-instruments"),
    *_both("fair-prices", market_views.FairPriceView.as_view(), "api-fair-prices"),
]
