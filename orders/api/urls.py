"""Order endpoints under /api/ (SPEC 4): slash-less paths, and the same with a slash."""

from orders.api import views
from trading_site.core.api.routes import slash_optional

urlpatterns = [
    *slash_optional("orders", views.OrdersView.as_view(), "api-orders"),
    *slash_optional("orders/export", views.OrdersExportView.as_view(), "api-orders-export"),
    *slash_optional("orders/<int:order_id>", views.OrderDetailView.as_view(), "api-order"),
    *slash_optional(
        "orders/<int:order_id>/cancel", views.CancelOrderView.as_view(), "api-order-cancel"
    ),
    *slash_optional("algo-orders", views.AlgoOrderView.as_view(), "api-algo-orders"),
    *slash_optional(
        "algo-place-batch-orders", views.BatchOrdersView.as_view(), "api-algo-place-batch-orders"
    ),
]
