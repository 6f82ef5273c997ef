"""Order endpoints under /api/ (SPEC 4): slash-less paths, and the same with a slash."""

from django.urls import path

from orders.api import views


def _both(route: str, view, name: str) -> list:
    return [path(route, view, name=name), path(route + "/", view)]


urlpatterns = [
    *_both("orders", views.OrdersView.as_view(), "api-orders"),
    *_both("orders/export", views.OrdersExportView.as_view(), "api-orders-export"),
    *_both("orders/<int:order_id>", views.OrderDetailView.as_view(), "api-order"),
    *_both("orders/<int:order_id>/cancel", views.CancelOrderView.as_view(), "api-order-cancel"),
    *_both("algo-orders", views.AlgoOrderView.as_view(), "api-algo-orders"),
    *_both(
        "algo-place-batch-orders", views.BatchOrdersView.as_view(), "api-algo-place-batch-orders"
    ),
]
