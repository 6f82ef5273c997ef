"""Trade book endpoints under /api/: slash-less paths, and the same with a slash."""

from django.urls import path

from orders.tradebook.api import views


def _both(route: str, view, name: str) -> list:
    return [path(route, view, name=name), path(route + "/", view)]


urlpatterns = [
    *_both("trades", views.TradesView.as_view(), "api-trades"),
    *_both("trades/export", views.TradesExportView.as_view(), "api-trades-export"),
]
