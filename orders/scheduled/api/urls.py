"""Scheduled-order routes: paths without a trailing slash, and the same with one."""

from orders.scheduled.api import views
from trading_site.core.api.routes import slash_optional

urlpatterns = [
    *slash_optional(
        "scheduled-orders", views.ScheduledOrderListView.as_view(), "api-scheduled-orders"
    ),
    *slash_optional(
        "scheduled-orders/<int:schedule_id>",
        views.ScheduledOrderDetailView.as_view(),
        "api-scheduled-order",
    ),
]
