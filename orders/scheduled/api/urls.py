"""Scheduled-order routes: paths without a trailing slash, and the same with one."""

from django.urls import path

from orders.scheduled.api import views


def _both(route: str, view, name: str) -> list:
    return [path(route, view, name=name), path(route + "/", view)]


urlpatterns = [
    *_both("scheduled-orders", views.ScheduledOrderListView.as_view(), "api-scheduled-orders"),
    *_both(
        "scheduled-orders/<int:schedule_id>",
        views.ScheduledOrderDetailView.as_view(),
        "api-scheduled-order",
    ),
]
