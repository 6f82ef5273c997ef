"""The product's URLs plus the benchmarks' floor endpoints (ROOT_URLCONF of bench.settings)."""

from django.urls import path

from bench import views
from trading_site import urls as product_urls

handler404 = product_urls.handler404
handler500 = product_urls.handler500


def _both(route: str, view, name: str) -> list:
    return [path(route, view, name=name), path(route + "/", view)]


# Before the product's patterns: its /api/ catch-all answers every other path with a 404.
urlpatterns = [
    *_both("api/bench/bare-insert", views.BenchBareInsertView.as_view(), "api-bench-bare-insert"),
    *_both("api/bench/order-by-pk", views.BenchOrderByPkView.as_view(), "api-bench-order-by-pk"),
    *_both("api/bench/newest-order", views.BenchNewestOrderView.as_view(), "api-bench-newest"),
    *product_urls.urlpatterns,
]
