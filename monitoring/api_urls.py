"""Monitoring API routes: paths without a trailing slash, and the same with one."""

from django.urls import path

from monitoring import api


def _both(route: str, view, name: str) -> list:
    return [path(route, view, name=name), path(route + "/", view)]


urlpatterns = [
    *_both("monitoring/runs", api.MonitoringRunListView.as_view(), "api-monitoring-runs"),
]
