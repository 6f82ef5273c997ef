"""Positions and holdings endpoints under /api/: slash-less paths, and the same with a slash."""

from django.urls import path

from orders.positions.api import views


def _both(route: str, view, name: str) -> list:
    return [path(route, view, name=name), path(route + "/", view)]


urlpatterns = [
    *_both("positions", views.PositionsView.as_view(), "api-positions"),
    *_both("positions/exit", views.ExitPositionView.as_view(), "api-positions-exit"),
    *_both("positions/exit-all", views.ExitAllPositionsView.as_view(), "api-positions-exit-all"),
    *_both("holdings", views.HoldingsView.as_view(), "api-holdings"),
]
