"""Monitoring API routes: paths without a trailing slash, and the same with one."""

from monitoring.api import views
from trading_site.core.api.routes import slash_optional

urlpatterns = [
    *slash_optional(
        "monitoring/runs", views.MonitoringRunListView.as_view(), "api-monitoring-runs"
    ),
]
