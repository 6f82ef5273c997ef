"""Monitoring API routes: paths without a trailing slash, and the same with one."""

from django.urls import path

from monitoring.api import views


def _both(route: str, view, name: str) -> list:
    return [path(route, view, name=name), path(route + "/", view)]


urlpatterns = [
    *_both("monitoring/runs", views.MonitoringRunListView.as_view(), "api-monitoring-runs"),
]
