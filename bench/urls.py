"""The product's URLs plus the benchmarks' floor endpoints (ROOT_URLCONF of bench.settings)."""

from bench import views
from trading_site import urls as product_urls
from trading_site.core.api.routes import slash_optional

handler404 = product_urls.handler404
handler500 = product_urls.handler500


# Before the product's patterns: its /api/ catch-all answers every other path with a 404.
urlpatterns = [
    *slash_optional(
        "api/bench/bare-insert", views.BenchBareInsertView.as_view(), "api-bench-bare-insert"
    ),
    *slash_optional(
        "api/bench/order-by-pk", views.BenchOrderByPkView.as_view(), "api-bench-order-by-pk"
    ),
    *slash_optional(
        "api/bench/newest-order", views.BenchNewestOrderView.as_view(), "api-bench-newest"
    ),
    *product_urls.urlpatterns,
]
